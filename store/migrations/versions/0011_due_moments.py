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
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = sa.text("state = 'waiting'")


def upgrade() -> None:
    op.create_index("ix_enrollment_waiting_next", "enrollment", ["next_at", "customer_id"],
                    sqlite_where=WAITING, postgresql_where=WAITING)
    op.create_index("ix_customer_birth_md", "customer", ["birth_md"])
    op.create_index("ix_customer_timezone", "customer", ["timezone"])


def downgrade() -> None:
    op.drop_index("ix_customer_timezone", table_name="customer")
    op.drop_index("ix_customer_birth_md", table_name="customer")
    op.drop_index("ix_enrollment_waiting_next", table_name="enrollment")
