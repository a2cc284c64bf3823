"""claim: its own product line

Revision ID: 0006
Revises: 0005
Create Date: 2027-01-08

A claim took its product line from its policy only, and ``policy_external_id`` is optional in
an import: a claim without one had no product line, so a condition like ``claim.product_line
ne property`` could not place it. ``product_line`` is the claim's own (from the claims import);
journeys read it first and the policy's when it is empty. Existing rows stay empty and keep
reading their policy's.
"""

from collections.abc import Sequence

import sqlmodel

from store.migrations.column_ops import add_nullable_columns, drop_columns

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_nullable_columns("claim", product_line=sqlmodel.sql.sqltypes.AutoString(length=16))


def downgrade() -> None:
    drop_columns("claim", "product_line")
