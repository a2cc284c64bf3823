"""one live dispatcher per worker id: who holds each id, and when it was last seen

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05

A dispatcher's ``--worker`` id was only a name on its claims: a second process started with the
same id (a copied service unit, two pods of one name) took the first one's claims in flight for its
own dead predecessor's and settled or sent them again. A row here says which live instance holds
the id and when it was last seen (engine.sending.worker_lease); a second process is refused while
the holder is seen, and takes the id over only once the holder's heartbeat is older than the lease
(or the holder's process is gone from the same machine).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_lease",
        sa.Column("worker_id", AutoString(length=64), nullable=False),
        sa.Column("instance", AutoString(length=16), nullable=False),
        sa.Column("host", AutoString(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("process", AutoString(length=160), nullable=True),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("worker_id"),
    )


def downgrade() -> None:
    op.drop_table("worker_lease")
