"""webhook nonces: refuse a replayed WeChat signature

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10

WeChat's plain-mode signature covers the token, timestamp and nonce, not the body; a
captured signature could be replayed with another body while its timestamp is accepted.
Each nonce used is kept (keyed with its provider and timestamp) until the timestamp
leaves the window, so a second use fails on the primary key in every worker at once.
``expires_at`` is indexed so that the expired rows are deleted by a range scan.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_nonce",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_webhook_nonce_expires_at", "webhook_nonce", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_nonce_expires_at", table_name="webhook_nonce")
    op.drop_table("webhook_nonce")
