"""Atomic claiming of due touches, so that concurrent dispatch workers never take the same touch.

A claim moves a batch of due ``planned`` touches to ``sending`` in one statement and
stamps them with the worker's claim id and the claim time: a dispatcher's is its worker id and its
process's instance (``engine.sending.worker_lease``), so that two processes never share one. Only the
instance that claimed a touch may record its result (``record`` in ``engine.sending.dispatch`` matches on
``claimed_by``), and only ``engine.sending.reconcile`` may take a ``sending`` touch away from
a worker that died.

- PostgreSQL: ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)``; two
  workers claiming at the same moment get disjoint batches without waiting on each other.
- SQLite: the same ``UPDATE … RETURNING`` inside ``BEGIN IMMEDIATE``, which takes the
  database's single write lock before reading, so a second claimer (another process on
  the same file) waits on ``busy_timeout`` and then sees the rows already claimed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String, bindparam, column, text
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.sql.selectable import TextualSelect
from sqlalchemy.types import TypeEngine
from sqlmodel.sql.sqltypes import UTCDateTime

from store.clock import as_utc, utcnow
from store.models import TouchStatus

# The columns a worker needs to render and send a touch; returned by the claim itself
# so that no second round trip is needed.
_CLAIM_COLUMNS = (
    "id, key, customer_id, journey_id, step_id, occurrence, category, urgent, channel, "
    "fallback_channels, template, attempts, due_at, journey_version, planned_for"
)

_DUE = (
    "status = :planned AND due_at <= :now AND (next_attempt_at IS NULL OR next_attempt_at <= :now)"
)


@dataclass(frozen=True)
class ClaimedTouch:
    id: int
    key: str
    customer_id: int
    journey_id: str
    step_id: str
    occurrence: str
    category: str
    urgent: bool
    channel: str
    fallback_channels: list[str]
    template: str
    attempts: int  # including this attempt
    due_at: datetime
    # What the touch was decided under and for when: an edit since may take it back (engine.language.journey_edits).
    journey_version: str = ""
    planned_for: datetime | None = None


def _rows_to_claimed(rows: Sequence[Any], dialect: Dialect) -> list[ClaimedTouch]:
    """The claimed rows as touches. ``due_at`` and ``fallback_channels`` come back as the driver gives them and go
    through their column types' conversion here, once per distinct value: a batch's touches share a few due
    moments and channel lists, and converting each row's anew (a datetime parsed from text, a JSON list) was
    most of turning a claimed row into a touch (profiled)."""
    due_of = moments(dialect)
    fallbacks_of = _processor(JSON(), dialect)
    fallbacks: dict[Any, list[str]] = {}
    out: list[ClaimedTouch] = []
    for (touch_id, key, customer_id, journey_id, step_id, occurrence, category, urgent, channel, fallback_raw,
         template, attempts, due_raw, journey_version, planned_raw) in rows:
        due_at = due_of(due_raw)
        listed = fallbacks.get(fallback_raw) if isinstance(fallback_raw, str | None) else None
        if listed is None:
            listed = list(fallbacks_of(fallback_raw) or [])
            if isinstance(fallback_raw, str | None):
                fallbacks[fallback_raw] = listed
        out.append(ClaimedTouch(
            id=int(touch_id), key=key, customer_id=int(customer_id), journey_id=journey_id, step_id=step_id,
            occurrence=occurrence, category=category, urgent=bool(urgent), channel=channel,
            fallback_channels=list(listed),  # each touch its own list, as before
            template=template, attempts=int(attempts), due_at=due_at,
            journey_version=journey_version, planned_for=due_of(planned_raw),
        ))
    return out


def moments(dialect: Dialect) -> Callable[[Any], datetime]:
    """A ``due_at`` (or any UTC moment) as the driver gives it, read as the models read it (an aware UTC
    datetime), each distinct value converted once: a batch's rows share a few moments."""
    process = _processor(UTCDateTime(), dialect)
    seen: dict[Any, datetime] = {}

    def moment(raw: Any) -> datetime:
        found = seen.get(raw)
        if found is None:
            found = seen[raw] = as_utc(process(raw))
        return found

    return moment


def _processor(kind: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any]:
    process = kind.dialect_impl(dialect).result_processor(dialect, None)
    return process if process is not None else _same


def _same(value: Any) -> Any:
    return value


def _params(worker_id: str, limit: int, now: datetime, channels: list[str] | None = None) -> dict[str, Any]:
    return {
        "channels": channels,
        "planned": TouchStatus.PLANNED,
        "sending": TouchStatus.SENDING,
        "now": as_utc(now),
        "worker": worker_id,
        "limit": int(limit),
    }


def _due(channels: list[str] | None) -> str:
    # Channels without an adapter on this worker are left for a worker that has one.
    return _DUE + (" AND channel IN :channels" if channels is not None else "")


def _typed(sql: str, channels: list[str] | None) -> TextualSelect:
    """Raw SQL whose datetimes and JSON go through the same column types the models use, so
    comparisons match what the ORM stored (naive-UTC text on SQLite, timestamptz on PostgreSQL)."""
    return (
        text(sql)
        .bindparams(
            bindparam("now", type_=UTCDateTime()),
            *([bindparam("channels", expanding=True)] if channels is not None else []),
        )
        .columns(
            column("id", Integer), column("key", String), column("customer_id", Integer),
            column("journey_id", String), column("step_id", String), column("occurrence", String),
            column("category", String),
            # fallback_channels and due_at as the driver gives them: see _rows_to_claimed.
            column("urgent", Boolean), column("channel", String), column("fallback_channels"),
            column("template", String), column("attempts", Integer), column("due_at"),
            column("journey_version", String), column("planned_for"),
        )
    )


def _claim(conn: Connection, params: dict[str, Any], lock: str = "") -> list[ClaimedTouch]:
    """The claim statement; ``lock`` is PostgreSQL's row locking of the chosen touches (see the module doc)."""
    due = _due(params["channels"])
    result = conn.execute(
        _typed(
            f"UPDATE touch SET status = :sending, claimed_by = :worker, claimed_at = :now, "  # nosec B608 # joins constant SQL fragments only; values are bound
            f"attempts = attempts + 1 "
            f"WHERE id IN (SELECT id FROM touch WHERE {due} ORDER BY due_at LIMIT :limit{lock}) "
            f"RETURNING {_CLAIM_COLUMNS}",
            params["channels"],
        ),
        params,
    )
    return _rows_to_claimed(result.all(), conn.dialect)


def begin_write(conn: Connection) -> None:
    """Start the connection's transaction; on SQLite as ``BEGIN IMMEDIATE`` (take the write lock now)."""
    if conn.dialect.name == "sqlite":
        # pysqlite would otherwise open a DEFERRED transaction lazily at the first write;
        # issuing BEGIN ourselves makes it skip its own.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def claim_due(
    engine: Engine,
    worker_id: str,
    limit: int,
    now: datetime | None = None,
    channels: list[str] | None = None,
) -> list[ClaimedTouch]:
    """Claim up to ``limit`` due touches (of ``channels``, default all) for ``worker_id``:
    they are ``sending`` when this returns."""
    if limit <= 0 or channels == []:
        return []
    params = _params(worker_id, limit, now or utcnow(), channels)
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            claimed = _claim(conn, params, lock=" FOR UPDATE SKIP LOCKED")
        else:
            begin_write(conn)
            claimed = _claim(conn, params)
        conn.commit()
    # RETURNING gives no order guarantee; keep due order so the oldest go first.
    claimed.sort(key=lambda t: (t.due_at, t.id))
    return claimed


def due_count(engine: Engine, now: datetime | None = None) -> int:
    """How many touches are due now (for logs and for the service's idle back-off)."""
    params = _params("", 0, now or utcnow())
    with engine.connect() as conn:
        stmt = text(f"SELECT count(*) FROM touch WHERE {_DUE}").bindparams(bindparam("now", type_=UTCDateTime()))  # nosec B608 # _DUE is a constant
        return int(conn.execute(stmt, params).scalar_one())
