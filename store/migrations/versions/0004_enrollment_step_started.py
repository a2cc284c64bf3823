"""enrollment: when the current step began, and the event a wait_for ended on

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-06

A waiting enrollment stored only its step and ``next_at``. A ``wait`` stored the step after it
with ``next_at`` = the wait's end, a ``wait_for`` its own step with ``next_at`` = its deadline,
so at a ``wait_for`` step the planner could not tell "inside this wait_for until its
deadline" from "arriving here at ``next_at``", and it took the start of the wait from the
previous deadline: the next ``wait_for`` after a timeout expired at once. ``step_started_at``
says when the enrollment arrived at its step (the start of the wait or wait_for it is in);
``scope_event_id`` keeps the event a ``wait_for`` ended on, whose fields the later steps read.

Rows already stored keep both empty and are read as the old code wrote them (see
``engine.planning.step_machine.StepMachine.resume``): nothing is rewritten, because the
start of a stored wait_for can only be worked out from its journey file.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from store.migrations.column_ops import add_nullable_columns, drop_columns

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_nullable_columns("enrollment", step_started_at=sqlmodel.sql.sqltypes.UTCDateTime(), scope_event_id=sa.Integer())


def downgrade() -> None:
    drop_columns("enrollment", "scope_event_id", "step_started_at")
