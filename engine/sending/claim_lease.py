"""Keeping a batch's claim while it is being sent, and letting go of what another worker took over.

A claim is a lease: ``engine.sending.reconcile`` takes a touch left ``sending`` longer than
``DEFAULT_LEASE`` for a dead worker's, asks the provider about it, and sends it again if the provider
has nothing. A batch that is still being sent when its claim is that old (a low rate limit shared by
several workers, a provider answering slowly) is no dead worker's: before each chunk goes out, a
claim older than a third of the lease is renewed, and only the touches still claimed by this worker
are sent. One another worker has already taken over is left to it, neither sent nor recorded here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine
from sqlmodel.sql.sqltypes import UTCDateTime

from channels.base import SendResult
from engine.sending.claiming import begin_write
from engine.sending.reconcile import DEFAULT_LEASE
from store.models import TouchStatus

RENEW_AFTER = DEFAULT_LEASE / 3
TAKEN_OVER = "taken_over"  # the code of a result that is no result: another worker has the touch

_RENEW = text(
    "UPDATE touch SET claimed_at = :now WHERE id IN :ids AND status = :sending AND claimed_by = :w"
).bindparams(bindparam("ids", expanding=True), bindparam("now", type_=UTCDateTime()))
_MINE = text(
    "SELECT id FROM touch WHERE id IN :ids AND status = :sending AND claimed_by = :w"
).bindparams(bindparam("ids", expanding=True))


def renew(engine: Engine, worker_id: str, touch_ids: list[int], now: datetime) -> set[int]:
    """Renew this worker's claim on ``touch_ids``; the ids it still holds (the others are not to be sent)."""
    params: dict[str, Any] = {"ids": touch_ids, "now": now, "sending": TouchStatus.SENDING, "w": worker_id}
    with engine.connect() as conn:
        begin_write(conn)
        conn.execute(_RENEW, params)
        mine = {int(i) for i in conn.execute(_MINE, params).scalars()}
        conn.commit()
    return mine


def taken_over(key: str) -> SendResult:
    return SendResult(key, False, error_code=TAKEN_OVER, error_reason="claimed by another worker")
