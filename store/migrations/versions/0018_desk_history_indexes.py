"""the supervisor's desk and the audit page read the tasks and audit rows of now, not the whole history

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05

Three reads grew with every task closed and every audit row written (benchmarks/console_pages_bench.py,
200,000 customers, 20,000 open and 60,000 closed tasks, 50,000 audit rows, SQLite):

- the desk's backlog per queue (console.supervision.backlog) read every task ever written through
  ix_task_pool (SQLite cannot tell from (status, due_at) statistics that open tasks are few); a partial
  index of the active tasks only, covering what the backlog sums, keeps it to the open work;
- the team's tasks closed this week (supervision.agent_figures) searched (assignee, status) and read every
  task each agent ever closed; with completed_at in the key it is a range of this week;
- reveal bursts (console.task_reveal) grouped the whole audit log by actor to find who revealed in the
  period; (action, at, actor) makes it a range of the period's reveal rows, read from the index alone.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from store.migrations.index_ops import IndexSpec, create_indexes, drop_indexes

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Literal, as the query states it: a partial index serves a query only when its condition is the query's.
ACTIVE = sa.text("status IN ('open', 'claimed')")
# (index, table, columns, the rows it keeps)
INDEXES: tuple[IndexSpec, ...] = (
    ("ix_task_active_queue", "agent_task", ["queue", "assignee_id", "due_at", "warn_at", "status"], ACTIVE),
    ("ix_task_assignee_status_completed", "agent_task", ["assignee_id", "status", "completed_at"], None),
    ("ix_audit_log_action_at", "audit_log", ["action", "at", "actor"], None),
)


def upgrade() -> None:
    create_indexes(INDEXES)


def downgrade() -> None:
    drop_indexes(INDEXES)
