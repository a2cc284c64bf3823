"""Writing down what became of a send attempt: the touch's next state and its outcome row.

Shared by the two places that settle a ``sending`` touch: ``engine.sending.dispatch`` from the
adapters' results and ``engine.sending.reconcile`` from what the provider says (or cannot
say) about an interrupted or unanswered send. Each writes under its own guard, the claim
the result belongs to, so that a late writer cannot overwrite a touch already taken over.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, bindparam, text
from sqlalchemy.engine import Connection
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
_TYPED = {"now": UTCDateTime, "next": UTCDateTime, "fb": JSON}


def update_touches(conn: Connection, change: str, guard: str, rows: list[dict[str, Any]]) -> None:
    """``UPDATE touch SET <change>`` for each row's touch (``:id``), as one executemany, where
    ``guard`` (an ``AND …`` on status and claim) still holds."""
    if not rows:
        return
    typed = [bindparam(name, type_=kind()) for name, kind in _TYPED.items() if re.search(rf":{name}\b", change)]
    conn.execute(text(f"UPDATE touch SET {change} WHERE id = :id {guard}").bindparams(*typed), rows)  # nosec B608 # callers pass constant fragments


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


def insert_outcomes(conn: Any, rows: list[dict[str, Any]]) -> None:
    """executemany INSERT of outcome rows, skipping any whose dedup_key is already there."""
    if not rows:
        return
    conflict = "ON CONFLICT (dedup_key) DO NOTHING"
    conn.execute(
        text(
            "INSERT INTO outcome (dedup_key, touch_id, customer_id, channel, kind, detail, occurred_at) "  # nosec B608 # the only f-string part is a constant
            f"VALUES (:dedup_key, :touch_id, :customer_id, :channel, :kind, :detail, :occurred_at) {conflict}"
        ).bindparams(bindparam("detail", type_=JSON()), bindparam("occurred_at", type_=UTCDateTime())),
        [{"task_id": None, **row} for row in rows],
    )


def insert_events(conn: Any, rows: list[dict[str, Any]]) -> None:
    """executemany INSERT of event rows (external_id, type, customer_id, data, occurred_at, received_at),
    skipping any whose external_id is already there."""
    if not rows:
        return
    conn.execute(
        text(
            "INSERT INTO event (external_id, type, customer_id, data, occurred_at, received_at) "
            "VALUES (:external_id, :type, :customer_id, :data, :occurred_at, :received_at) "
            "ON CONFLICT (external_id) DO NOTHING"
        ).bindparams(bindparam("data", type_=JSON()), bindparam("occurred_at", type_=UTCDateTime()),
                     bindparam("received_at", type_=UTCDateTime())),
        rows,
    )
