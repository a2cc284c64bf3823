"""indexes on the moments things fall due, for a planner run that reads only what is due

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

Before it walks the book in chunks, a plan run asks each source once which customers may have
something due in its window (``engine.planning.due_chunks``), so that a 5-minute tick with
nothing to do costs what is due rather than what the book holds. Two of those questions had no
index to go to: waiting enrollments by the moment their wait ends, over the whole book (the
existing waiting index leads with the customer, for the per-chunk look-up), and customers by
birthday code without a tier (the existing index leads with the tier). The book's time zones,
read at every run, come from an index on the zone, one probe per zone, instead of a read of every
customer.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from store.migrations.index_ops import IndexSpec, create_indexes, drop_indexes

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = sa.text("state = 'waiting'")
# (index, table, columns, the rows it keeps)
DUE: tuple[IndexSpec, ...] = (
    ("ix_enrollment_waiting_next", "enrollment", ["next_at", "customer_id"], WAITING),
    ("ix_customer_birth_md", "customer", ["birth_md"], None),
    ("ix_customer_timezone", "customer", ["timezone"], None),
)


def upgrade() -> None:
    create_indexes(DUE)


def downgrade() -> None:
    drop_indexes(DUE)
