"""app push and consent by purpose: a device registration id, push consent, marketing consent per channel

Revision ID: 0009
Revises: 0008
Create Date: 2027-01-20

``customer.push_registration_id`` is the JPush registration id of the customer's app install, the
address of the ``push`` channel; ``consent_push`` (with its source and time) its consent.

PIPL Art. 24 and the programme ask for consent per purpose: ``consent_<channel>`` stays the consent
to service messages on that channel (renewal, claims) and ``consent_<channel>_marketing`` is the
separate consent to marketing there; a marketing touch needs both. Until now one consent covered
both, so existing rows keep it empty (NULL), which reads "follows the channel's consent": nobody
gains or loses a message by the upgrade. An import that gives it, or an opt-out from a marketing
message (False), sets it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from store.migrations.column_ops import add_columns, drop_columns

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHANNELS = ("sms", "wechat", "email", "push")


def _consent_columns(prefix: str, nullable: bool) -> list[sa.Column]:
    return [
        sa.Column(prefix, sa.Boolean(), nullable=nullable, server_default=None if nullable else sa.false()),
        sa.Column(f"{prefix}_source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column(f"{prefix}_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    ]


def upgrade() -> None:
    add_columns("customer", sa.Column("push_registration_id", sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True), *_consent_columns("consent_push", nullable=False))
    # Nullable without a default: a plain ADD COLUMN on both databases, no table copy.
    for channel in _CHANNELS:
        add_columns("customer", *_consent_columns(f"consent_{channel}_marketing", nullable=True))


def downgrade() -> None:
    marketing = [f"consent_{channel}_marketing" for channel in reversed(_CHANNELS)]
    drop_columns("customer", *(name for prefix in marketing for name in (f"{prefix}_at", f"{prefix}_source", prefix)),
                 "consent_push_at", "consent_push_source", "consent_push", "push_registration_id")
