"""What many revisions do alike: add columns to a table, and drop them again in one batch.

Revisions import this module as it stands when they run, so a change here changes what every
revision using it does: it may only ever issue the same operations in the same order.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op


def add_columns(table: str, *columns: sa.Column[Any]) -> None:
    """One ADD COLUMN each, outside any batch: SQLite adds a column in place, so no table is copied."""
    for column in columns:
        op.add_column(table, column)


def add_nullable_columns(table: str, **types: sa.types.TypeEngine[Any]) -> None:
    """Columns ``name=type``, in this order, nullable and without a default: existing rows read NULL,
    so neither database rewrites or copies the table."""
    add_columns(table, *(sa.Column(name, type_, nullable=True) for name, type_ in types.items()))


def drop_columns(table: str, *names: str) -> None:
    """Drop ``names`` in this order, in one batch: Alembic drops a column on SQLite by rebuilding the
    table, then once for all of them; PostgreSQL gets one DROP COLUMN each."""
    with op.batch_alter_table(table) as batch:
        for name in names:
            batch.drop_column(name)
