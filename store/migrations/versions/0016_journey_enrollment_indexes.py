"""a journey's enrollments of a period, and those still in it, are found by index

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04

A journey's page counts its enrollments entered and exited in the period shown and those still
in it (console.ops_journeys.step_counts). ``enrollment`` had no index that starts with the
journey: SQLite skip-scanned the unique index customer by customer, reading every enrollment the
book ever had (three such reads took 445 of the page's 550 ms at 20,000 customers and 400,000
enrollments, benchmarks/ops_bench.py), so the page grew slower every day the service ran, as the
touch and task counts did before migration 0015. The index of those still in the journey keeps
only their rows (most enrollments are done the moment they are written); the write floor before
and after is in benchmarks/README.md.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from store.migrations.index_ops import IndexSpec, create_indexes, drop_indexes

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Literal, as the query states it: a partial index serves a query only when its condition is the query's.
IN_JOURNEY = sa.text("state IN ('active', 'waiting')")
EXITED = sa.text("exited_at IS NOT NULL")
# Every row has entered_at: the condition keeps them all, and keeps the index from the queries that do not
# range over entered_at. As a plain index, SQLite took it for the tick's probe of waits that end
# (``journey_id IN (...)``, engine.planning.due_chunks) instead of the range of ix_enrollment_waiting_next,
# and read every enrollment those journeys ever had at every tick.
ENTERED = sa.text("entered_at IS NOT NULL")
# (index, table, columns, the rows it keeps)
BY_JOURNEY: tuple[IndexSpec, ...] = (
    ("ix_enrollment_journey_entered", "enrollment", ["journey_id", "entered_at"], ENTERED),
    ("ix_enrollment_journey_exited", "enrollment", ["journey_id", "exited_at"], EXITED),
    ("ix_enrollment_journey_open", "enrollment", ["journey_id", "step_id"], IN_JOURNEY),
)


def upgrade() -> None:
    create_indexes(BY_JOURNEY)


def downgrade() -> None:
    drop_indexes(BY_JOURNEY)
