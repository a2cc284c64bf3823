"""tier history by customer in time order, for the tier a customer had at a moment

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

A report by tier works out each customer's tier at the period's start from the tier history: the
newest change at or before it, else the first one after (``engine.loop.metric_sql.tier_at``), one
look-up per customer of the book. With only the index on the customer, each look-up sorted that
customer's changes; and PostgreSQL, before it had statistics on a freshly loaded table, walked the
index on ``changed_at`` instead, reading the whole history for every customer (a 100,000-customer
report did not finish in ten minutes). This index answers both look-ups in order, whatever the
statistics say.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tier_change_customer_time", "tier_change", ["customer_id", "changed_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tier_change_customer_time", table_name="tier_change")
