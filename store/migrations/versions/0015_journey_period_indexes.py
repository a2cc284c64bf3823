"""a journey's touches and tasks of a period are found by index

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

The ops journeys list counts each journey's touches and tasks of the last seven days, and a
journey's page its touches planned and tasks opened and closed in the period shown. ``touch`` and
``agent_task`` had no index that starts with the journey, so each of those counts read every touch
and task ever written: the pages' time grew with the book's history, not with what they show
(benchmarks/ops_bench.py). Each index costs one more B-tree insert per planned row; the write
floor before and after is in benchmarks/README.md.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from store.migrations.index_ops import IndexSpec, create_indexes, drop_indexes

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMPLETED = sa.text("completed_at IS NOT NULL")
# (index, table, columns, the rows it keeps)
BY_JOURNEY: tuple[IndexSpec, ...] = (
    ("ix_touch_journey_planned", "touch", ["journey_id", "planned_for"], None),
    ("ix_task_journey_created", "agent_task", ["journey_id", "created_at"], None),
    # Only closed tasks: planning writes no key here.
    ("ix_task_journey_completed", "agent_task", ["journey_id", "completed_at"], COMPLETED),
)


def upgrade() -> None:
    create_indexes(BY_JOURNEY)


def downgrade() -> None:
    drop_indexes(BY_JOURNEY)
