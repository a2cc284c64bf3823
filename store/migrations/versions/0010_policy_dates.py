"""policy: premium due date and grace period end

Revision ID: 0010
Revises: 0009
Create Date: 2027-01-10

Journeys anchor on any policy date (``date: {anchor: policy.premium_due_date, offset: -7d}``,
``wait: {until: {anchor: policy.grace_period_end, ...}}``); the policy import carries the two
dates a premium reminder needs. Both are optional: existing rows stay empty, and a journey
anchored on an empty date has no occurrence for that policy.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from store.migrations.column_ops import add_nullable_columns, drop_columns

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_nullable_columns("policy", premium_due_date=sa.Date(), grace_period_end=sa.Date())


def downgrade() -> None:
    drop_columns("policy", "grace_period_end", "premium_due_date")
