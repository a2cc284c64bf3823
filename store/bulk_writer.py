"""Bulk writing of generated rows: COPY on PostgreSQL, executemany of Core inserts on SQLite.

Ids of customers and policies are assigned here, before writing, because policies
point at customers and claims at policies: on PostgreSQL they are taken from the
table's own sequence (so a concurrent writer can never get the same id), on SQLite
from ``max(id)`` inside the write transaction (SQLite has one writer at a time).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.engine import Connection

from store.models import Claim, Customer, Policy, TierChange


def table(model: Any) -> Table:
    """The Core table of a SQLModel class (typed, for mypy)."""
    result: Table = model.__table__
    return result


CUSTOMER = table(Customer)
POLICY = table(Policy)
CLAIM = table(Claim)
TIER_CHANGE = table(TierChange)
_JSON_COLUMNS = {"preferred_channels", "attributes", "dimensions", "detail", "data", "value"}


def reserve_ids(conn: Connection, tbl: Table, count: int) -> list[int]:
    """``count`` fresh primary keys for ``tbl``."""
    if count == 0:
        return []
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": tbl.name, "n": count},
        )
        return [r[0] for r in rows]
    start = conn.execute(select(func.coalesce(func.max(tbl.c.id), 0))).scalar_one() + 1
    return list(range(start, start + count))


def write_rows(conn: Connection, tbl: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``tbl`` as fast as the dialect allows."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _copy(conn, tbl, rows)
    else:
        conn.execute(insert(tbl), list(rows))


def _copy(conn: Connection, tbl: Table, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(rows[0])
    json_at = [i for i, c in enumerate(columns) if c in _JSON_COLUMNS]
    raw = conn.connection.driver_connection  # the psycopg connection, inside SQLAlchemy's transaction
    assert raw is not None
    names = ", ".join(f'"{c}"' for c in columns)
    with raw.cursor() as cursor, cursor.copy(f'COPY "{tbl.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            values = [row[c] for c in columns]
            for i in json_at:
                values[i] = json.dumps(values[i], ensure_ascii=False)
            copy.write_row(values)
