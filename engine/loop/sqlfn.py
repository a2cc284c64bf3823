"""SQL pieces the loop's queries share, and those whose spelling differs between SQLite and PostgreSQL.

Reports and monitoring compute with SQL aggregates; the only dialect differences they
meet are date arithmetic and "insert unless the key already exists".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel


def seconds_between(later: Any, earlier: Any, dialect: str) -> ColumnElement[float]:
    """``later - earlier`` in seconds, as a float SQL expression.

    SQLite keeps UTC datetimes as ``YYYY-MM-DD HH:MM:SS.ffffff`` text, which
    ``julianday`` reads; PostgreSQL subtracts timestamps into an interval.
    """
    if dialect == "sqlite":
        return sa.cast((sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0, sa.Float)
    return sa.cast(sa.extract("epoch", later - earlier), sa.Float)


def insert_ignoring_duplicates(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert ``rows``, skipping any whose unique key is already there; returns how many went in.

    Used for rows with deterministic keys (events, tasks) so that a re-run or a second
    worker doing the same job changes nothing.
    """
    if not rows:
        return 0
    stmt: Any
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing()
    elif conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - the product supports SQLite and PostgreSQL only
        raise NotImplementedError(conn.dialect.name)
    # rowcount is not reliable for executemany batches (psycopg reports -1), so count the
    # primary keys the database hands back for the rows it actually inserted.
    result = conn.execute(stmt.returning(*table.primary_key.columns), list(rows))
    return len(result.all())


def count_where(condition: Any) -> ColumnElement[Any]:
    """How many rows of the group meet ``condition`` (SUM of a 1/0 CASE, which both dialects read alike)."""
    return sa.func.sum(sa.case((condition, 1), else_=0))


def bucket_index(moment: Any, origin: Any, bucket_seconds: int, dialect: str) -> ColumnElement[int]:
    """Which ``bucket_seconds``-long bucket after ``origin`` ``moment`` falls in (0, 1, ...; moment ≥ origin)."""
    seconds = seconds_between(moment, origin, dialect) / bucket_seconds
    if dialect == "sqlite":
        # CAST truncates towards zero, which is floor for the non-negative values asked for here.
        return sa.cast(seconds, sa.Integer)
    return sa.cast(sa.func.floor(seconds), sa.Integer)


def table(name: str) -> sa.Table:
    """The Core table of a store model (for bulk statements), by table name."""
    import store.models  # noqa: F401  (registers the tables)

    return SQLModel.metadata.tables[name]
