"""the report finds an enrollment's first touch among that enrollment's touches, not all its customer's

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05

The report's time to the first touch (engine.loop.service_metrics.first_touch_figures) asks, for each
enrollment of the period, when the first of its touches was sent: the touches of its customer, journey
and occurrence (the planner leaves touch.enrollment_id empty). ix_touch_customer_due finds the
customer's touches and both databases read every one of them, from the table, to keep the enrollment's:
the work per enrollment grows with all the customer ever received, so a book of long-served customers
costs enrollments times touches per customer (on PostgreSQL 2.7 million page reads for the month of
benchmarks/console_pages_bench.py at 200,000 customers, 5 touches each). With the enrollment's three
columns in the key, and the two the question reads after them, each look-up is a search of the index
alone that reads that enrollment's touches only.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["customer_id", "journey_id", "occurrence", "sent_at", "channel"]


def upgrade() -> None:
    op.create_index("ix_touch_enrollment_sent", "touch", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_touch_enrollment_sent", table_name="touch")
