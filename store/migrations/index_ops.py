"""What several revisions do alike: create indexes, a partial one with the same condition on SQLite and
PostgreSQL, and drop them again, the last created first.

Revisions import this module as it stands when they run, so a change here changes what every revision
using it does: it may only ever issue the same operations in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# (index, table, columns, the rows it keeps: None for every row)
IndexSpec = tuple[str, str, list[str], sa.TextClause | None]


def create_indexes(indexes: Sequence[IndexSpec]) -> None:
    """One CREATE INDEX each, in order. A condition is given to both databases alike: a partial index
    serves a query only when the query implies its condition, so the two must not differ."""
    for name, table, columns, where in indexes:
        op.create_index(name, table, columns, sqlite_where=where, postgresql_where=where)


def drop_indexes(indexes: Sequence[IndexSpec]) -> None:
    """One DROP INDEX each, in the reverse order of ``indexes`` (as a downgrade undoes ``create_indexes``)."""
    for name, table, _, _ in reversed(indexes):
        op.drop_index(name, table_name=table)
