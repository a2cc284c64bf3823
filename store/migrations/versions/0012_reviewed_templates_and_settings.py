"""review before going live for templates and delivery settings too: the kind of a stored version

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-22

Template folders (``template:<name>``) and the settings files (``setting:delivery.yaml``,
``setting:tiers.yaml``) are stored, reviewed, approved and rolled back as versions in the same
table as the journeys (engine.language.journey_review); ``kind`` says which a row is. Every row
stored before this revision is a journey's.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

from store.migrations.column_ops import drop_columns

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("journey_version") as batch:
        batch.add_column(sa.Column("kind", AutoString(length=16), nullable=False, server_default="journey"))


def downgrade() -> None:
    op.execute("DELETE FROM journey_version WHERE kind <> 'journey'")
    drop_columns("journey_version", "kind")
