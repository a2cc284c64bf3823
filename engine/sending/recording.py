"""Writing down what became of a send attempt: the touch's next state and its outcome row.

Shared by the two places that settle a ``sending`` touch: ``engine.sending.dispatch`` from the
adapters' results and ``engine.sending.reconcile`` from what the provider says (or cannot
say) about an interrupted or unanswered send. Each writes under its own guard, the claim
the result belongs to, so that a late writer cannot overwrite a touch already taken over.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import TypeEngine
from sqlmodel.sql.sqltypes import UTCDateTime

# The customer column a channel's message is addressed to (and a provider is asked about).

# Back to planned on the same channel, to be claimed again from :next.
REPLAN = "status = :planned, next_attempt_at = :next, error_class = :cls, error_reason = :reason, claimed_by = NULL"
# On to the next channel (:channel, leaving :fb after it), its attempts counted afresh.
FALL_BACK = (
    "status = :planned, channel = :channel, fallback_channels = :fb, attempts = 0, next_attempt_at = :next, "
    "error_class = :cls, error_reason = :reason, claimed_by = NULL"
)
# Settled for good: :status is failed or cancelled.
FINISH = "status = :status, error_class = :cls, error_reason = :reason"

# Parameters whose values need the models' column types (naive-UTC text on SQLite, JSON text).
_TYPED: dict[str, type[TypeEngine[Any]]] = {"now": UTCDateTime, "next": UTCDateTime, "claimed": UTCDateTime,
                                             "fb": JSON}
_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def update_touches(conn: Connection, change: str, guard: str, rows: list[dict[str, Any]],
                   shared: Mapping[str, Any] | None = None) -> None:
    """``UPDATE touch SET <change>`` for each row's touch (``:id``), as one executemany, where
    ``guard`` (an ``AND …`` on status and claim) still holds. ``shared``: parameters every row has alike
    (a row's own win), converted once."""
    if not rows:
        return
    sql = f"UPDATE touch SET {change} WHERE id = :id {guard}"  # nosec B608 # callers pass constant fragments
    executemany(conn, sql, rows, {name: kind for name, kind in _TYPED.items() if re.search(rf":{name}\b", sql)},
                shared)


def executemany(
    conn: Connection, sql: str, rows: list[dict[str, Any]], typed: Mapping[str, type[TypeEngine[Any]]],
    shared: Mapping[str, Any] | None = None,
) -> None:
    """``sql`` (``:name`` parameters) once per row (``shared`` added to each), handed to the driver's
    executemany as it is.

    The values of ``typed`` go through their column type's conversion here, as SQLAlchemy would;
    SQLAlchemy's own per-row parameter handling of a ``text()`` executemany (a dict built and
    every value looked at, for every row) was the larger part of recording a batch (profiled),
    and a batch records a thousand rows or more.
    """
    if not rows:
        return
    dialect = conn.dialect
    convert: dict[str, Callable[[Any], Any]] = {}
    for name, kind in typed.items():
        fn = kind().dialect_impl(dialect).bind_processor(dialect)
        if fn is not None:
            convert[name] = fn
    seen: dict[tuple[str, int], Any] = {}
    if shared:
        common = _converted(dict(shared), convert, seen)
        rows = [{**common, **_converted(row, convert, seen)} for row in rows]
    elif convert:
        rows = [_converted(row, convert, seen) for row in rows]
    conn.exec_driver_sql(_driver_sql(dialect, sql), rows)


def _converted(
    row: dict[str, Any], convert: Mapping[str, Callable[[Any], Any]], seen: dict[tuple[str, int], Any]
) -> dict[str, Any]:
    """``row`` with the values of ``convert``'s names converted (a new dict; ``row`` itself when it has none)."""
    if convert.keys().isdisjoint(row):
        return row
    out = dict(row)
    for name, fn in convert.items():
        if name not in out:
            continue
        value = out[name]
        if isinstance(value, datetime):
            # A batch's rows share their moments: each converted once.
            key = (name, id(value))
            if key not in seen:
                seen[key] = (value, fn(value))
            out[name] = seen[key][1]
        else:
            out[name] = fn(value)
    return out


def _driver_sql(dialect: Dialect, sql: str) -> str:
    """``sql`` with its ``:name`` parameters in the driver's style (sqlite3 takes ``:name`` itself)."""
    if dialect.paramstyle in ("named", "qmark") and dialect.name == "sqlite":
        return sql
    if dialect.paramstyle == "pyformat":
        return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
    raise NotImplementedError(f"no plain executemany for {dialect.name} ({dialect.paramstyle})")


def outcome_row(touch_id: int, touch_key: str, customer_id: int, channel: str, attempts: int, kind: str,
                now: datetime, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        # One outcome per (touch, channel, attempt, kind): recording twice changes nothing.
        "dedup_key": f"dispatch:{touch_key}:{channel}:{attempts}:{kind}"[:255],
        "touch_id": touch_id,
        "customer_id": customer_id,
        "channel": channel,
        "kind": kind,
        "detail": detail,
        "occurred_at": now,
    }


def insert_outcomes(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """executemany INSERT of outcome rows, skipping any whose dedup_key is already there."""
    executemany(
        conn,
        "INSERT INTO outcome (dedup_key, touch_id, customer_id, channel, kind, detail, occurred_at) "
        "VALUES (:dedup_key, :touch_id, :customer_id, :channel, :kind, :detail, :occurred_at) "
        "ON CONFLICT (dedup_key) DO NOTHING",
        rows,
        {"detail": JSON, "occurred_at": UTCDateTime},
    )


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """executemany INSERT of event rows (external_id, type, customer_id, data, occurred_at, received_at),
    skipping any whose external_id is already there."""
    executemany(
        conn,
        "INSERT INTO event (external_id, type, customer_id, data, occurred_at, received_at) "
        "VALUES (:external_id, :type, :customer_id, :data, :occurred_at, :received_at) "
        "ON CONFLICT (external_id) DO NOTHING",
        rows,
        {"data": JSON, "occurred_at": UTCDateTime, "received_at": UTCDateTime},
    )
