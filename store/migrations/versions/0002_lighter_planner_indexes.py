"""lighter indexes on the tables the planner fills

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

A day's plan for 1M customers writes about 1.4M touches and 1.7M enrollments; every index
is one more B-tree insert per row. ``journey_id`` alone is never searched on (the planner
searches enrollments by customer range, served by the unique (customer, journey,
occurrence) index; metrics group whole periods), and ``provider_message_id`` is searched
only by a given id, so the index leaves out the rows not yet sent (all the planned ones).
Waiting enrollments are looked up per chunk of customers; most enrollments end the day they
start and are never looked up that way, so the (state, next_at) index gives way to one on
(customer_id, next_at) over the waiting rows only.
Measured on 100k customers: about 12% less time for a day's plan.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SENT = sa.text("provider_message_id IS NOT NULL")
WAITING = sa.text("state = 'waiting'")


def upgrade() -> None:
    op.drop_index("ix_touch_journey_id", table_name="touch")
    op.drop_index("ix_enrollment_journey_id", table_name="enrollment")
    op.drop_index("ix_touch_provider_message_id", table_name="touch")
    op.create_index("ix_touch_provider_message_id", "touch", ["provider_message_id"],
                    sqlite_where=SENT, postgresql_where=SENT)
    op.drop_index("ix_enrollment_state_next", table_name="enrollment")
    op.create_index("ix_enrollment_waiting", "enrollment", ["customer_id", "next_at"],
                    sqlite_where=WAITING, postgresql_where=WAITING)


def downgrade() -> None:
    op.drop_index("ix_enrollment_waiting", table_name="enrollment")
    op.create_index("ix_enrollment_state_next", "enrollment", ["state", "next_at"])
    op.drop_index("ix_touch_provider_message_id", table_name="touch")
    op.create_index("ix_touch_provider_message_id", "touch", ["provider_message_id"])
    op.create_index("ix_enrollment_journey_id", "enrollment", ["journey_id"])
    op.create_index("ix_touch_journey_id", "touch", ["journey_id"])
