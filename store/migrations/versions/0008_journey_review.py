"""review before going live: a journey version's review state, who submitted and reviewed it, when it went in force

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-15

A changed journey file whose category needs review (config/review.yaml) is stored as a
``pending`` version and the last approved one stays in force until a user with the approve right
who did not submit it approves it (engine.language.journey_review). ``in_force_at`` is when a
version was last put in force (its approval or a rollback to it); the approved row with the
latest one is in force.

Rows stored before this revision are the programme as shipped and run until now: they count as
approved (``server_default``), and with no ``in_force_at`` their ``published_at`` stands in, so
the newest of them stays in force exactly as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from store.migrations.column_ops import drop_columns

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("in_force_at", "review_comment", "reviewed_at", "reviewed_by", "submitted_by", "review_state")


def upgrade() -> None:
    with op.batch_alter_table("journey_version") as batch:
        batch.add_column(sa.Column("review_state", AutoString(length=16), nullable=False,
                                   server_default="approved"))
        batch.add_column(sa.Column("submitted_by", AutoString(length=64), nullable=True))
        batch.add_column(sa.Column("reviewed_by", AutoString(length=64), nullable=True))
        batch.add_column(sa.Column("reviewed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("review_comment", AutoString(), nullable=True))
        batch.add_column(sa.Column("in_force_at", UTCDateTime(), nullable=True))
    op.create_index("ix_journey_version_review", "journey_version", ["journey_id", "review_state"])


def downgrade() -> None:
    op.drop_index("ix_journey_version_review", table_name="journey_version")
    drop_columns("journey_version", *_COLUMNS)
