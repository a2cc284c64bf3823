"""the report finds a touch's replies and clicks by the touch, however few outcomes name a touch

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05

The report's touch figures ask, per touch of the period, whether an outcome of kind replied or
clicked names it (engine.loop.service_metrics.touch_figures). Task outcomes leave touch_id empty, and
SQLite's statistics count the empty ones as one value: where most outcomes are a task's (the book of
benchmarks/console_pages_bench.py: 60,000 task outcomes, no touch outcome), ix_outcome_touch_id reads
as 60,000 rows per touch, no better than reading the table, and SQLite scanned every outcome for every
touch of the month (over ten minutes at 200,000 customers). An index of the outcomes that name a touch
counts only those, and holds the kind beside it: one search per touch.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from store.migrations.index_ops import IndexSpec, create_indexes, drop_indexes

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Literal, as the model states it; ``touch_id = ?`` implies it, so both databases may use the index for it.
NAMES_A_TOUCH = sa.text("touch_id IS NOT NULL")
TOUCH_KIND: tuple[IndexSpec, ...] = (("ix_outcome_touch_kind", "outcome", ["touch_id", "kind"], NAMES_A_TOUCH),)


def upgrade() -> None:
    create_indexes(TOUCH_KIND)


def downgrade() -> None:
    drop_indexes(TOUCH_KIND)
