"""enrollment and agent_task: the event that triggered them, as a key the metrics can join on

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-07

An event-entry enrollment and its tasks named their event only in ``occurrence``: the
planner's ``event-<event row id>``, or the event's external id for rows other systems wrote.
The report joined them to ``event`` on ``occurrence = external_id OR occurrence = 'event-' ||
id``, which no index serves: every enrollment was compared with every event, several times a
report (7.5 minutes for the demo's 3,000 customers; a real book's report never finished).

``event_id`` (a foreign key to ``event.id``, indexed) holds the event itself. Rows already
stored get it here, once, from their occurrence: the planner's form first (its id parsed from
the text and checked against the primary key), then the external id (its unique index). Rows
that name no event keep it empty, and the metrics fall back to the occurrence for rows still
empty, through ``ix_agent_task_unkeyed_occurrence`` (tasks whose ``event_id`` is empty, by
occurrence) and the event's own keys.

First-contact resolution asks of every done task whether a follow-up task names it as its
parent; ``ix_agent_task_parent`` (follow-ups only) answers that without reading every task.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("enrollment", "agent_task")
UNKEYED = sa.text("event_id IS NULL")
FOLLOW_UP = sa.text("parent_task_id IS NOT NULL")
# "event-" and at most 18 digits without a leading zero: exactly the text 'event-' || id of a
# BIGINT id, so the cast cannot fail (PostgreSQL) or read another number (SQLite's lenient cast).
PLANNER_FORM = {
    "postgresql": "{occ} ~ '^event-[1-9][0-9]{{0,17}}$'",
    "sqlite": "({occ} GLOB 'event-[1-9]*' AND substr({occ}, 7) NOT GLOB '*[^0-9]*' AND length({occ}) <= 24)",
}


def _planner_event_id(table: str, dialect: str) -> str:
    """The event id an occurrence of the planner's form names, else NULL (CASE: the test comes before the cast)."""
    occ = f"{table}.occurrence"
    return f"CASE WHEN {PLANNER_FORM[dialect].format(occ=occ)} THEN CAST(substr({occ}, 7) AS BIGINT) END"


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    for table in TABLES:
        if dialect == "sqlite":
            # SQLite adds a column with a REFERENCES clause in place (nullable, no default); Alembic
            # would want to rebuild the table to add the constraint separately.
            op.execute(f"ALTER TABLE {table} ADD COLUMN event_id INTEGER REFERENCES event (id)")
        else:
            op.add_column(table, sa.Column("event_id", sa.Integer(), nullable=True))
            op.create_foreign_key(f"{table}_event_id_fkey", table, "event", ["event_id"], ["id"])
        planner_id = _planner_event_id(table, dialect)
        op.execute(
            f"UPDATE {table} SET event_id = {planner_id} WHERE event_id IS NULL "
            f"AND EXISTS (SELECT 1 FROM event WHERE event.id = {planner_id})"
        )
        op.execute(
            f"UPDATE {table} SET event_id = (SELECT event.id FROM event WHERE event.external_id = {table}.occurrence) "
            f"WHERE event_id IS NULL AND EXISTS (SELECT 1 FROM event WHERE event.external_id = {table}.occurrence)"
        )
        op.create_index(f"ix_{table}_event_id", table, ["event_id"])
    op.create_index("ix_agent_task_unkeyed_occurrence", "agent_task", ["occurrence"],
                    sqlite_where=UNKEYED, postgresql_where=UNKEYED)
    op.create_index("ix_agent_task_parent", "agent_task", ["parent_task_id"],
                    sqlite_where=FOLLOW_UP, postgresql_where=FOLLOW_UP)


def downgrade() -> None:
    op.drop_index("ix_agent_task_parent", table_name="agent_task")
    op.drop_index("ix_agent_task_unkeyed_occurrence", table_name="agent_task")
    for table in TABLES:
        op.drop_index(f"ix_{table}_event_id", table_name=table)
        if op.get_bind().dialect.name == "sqlite":
            # The column is in a foreign key: SQLite's DROP COLUMN refuses it, so the table is rebuilt.
            with op.batch_alter_table(table) as batch:
                batch.drop_column("event_id")
        else:
            op.drop_constraint(f"{table}_event_id_fkey", table, type_="foreignkey")
            op.drop_column(table, "event_id")
