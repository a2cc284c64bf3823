"""agent desk: SLA warnings on tasks, and agents' skills

Revision ID: 0007
Revises: 0006
Create Date: 2027-01-08

``agent_task.warn_at`` is when the assignee and the supervisor are warned that a task's SLA is
running out (a share of its SLA time, by its queue's clock: config/queues.yaml), and
``warned_at`` when they were. The desk fills ``warn_at`` when it first sees a task; while it is
empty the task's SLA has not been set yet (a task on a business-hours queue still has the
planner's wall-clock due time). ``ix_task_status_warn`` finds both kinds of task among the
active ones; ``ix_task_completed`` reads the tasks closed on a day for the SLA compliance chart.

``ix_task_pool`` (queue, status, assignee, due time) gives a queue's claimable pool (open,
nobody's) in due order: an agent's inbox reads the pool of each of their team's queues from it.
Without it the databases walked every unassigned task in due order to fill and count a page of
a small queue (a complaints agent's 4,000 tasks among 100,000): the (assignee, status, due time)
index looked cheaper to them, as they cannot tell that half the tasks have no assignee.

``app_user.skills`` lists what an agent can take on (``lang:en``, ``product:health``,
``licence:life``, ...); queues and task types may require them. Existing users get none: an
agent who lists no language counts as speaking the default one (zh-CN).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from store.migrations.column_ops import add_nullable_columns, drop_columns

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_nullable_columns("agent_task", warn_at=sqlmodel.sql.sqltypes.UTCDateTime(),
                         warned_at=sqlmodel.sql.sqltypes.UTCDateTime())
    op.create_index("ix_task_status_warn", "agent_task", ["status", "warn_at"])
    op.create_index("ix_task_completed", "agent_task", ["completed_at"])
    op.create_index("ix_task_pool", "agent_task", ["queue", "status", "assignee_id", "due_at", "id"])
    op.add_column("app_user", sa.Column("skills", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    drop_columns("app_user", "skills")
    op.drop_index("ix_task_pool", table_name="agent_task")
    op.drop_index("ix_task_completed", table_name="agent_task")
    op.drop_index("ix_task_status_warn", table_name="agent_task")
    drop_columns("agent_task", "warned_at", "warn_at")
