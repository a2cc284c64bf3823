"""After a crash: settle the touches a dead worker left ``sending``, without sending any twice.

A touch is ``sending`` from its claim until its result is recorded. If the worker dies
in between, the provider may or may not have accepted it. Re-sending blindly would
duplicate every message that did go out; dropping it would lose every one that did
not. So each such touch is settled by asking, in this order:

1. the provider (adapter ``lookup``): did you accept a message for this touch? The
   SMS adapter asks Twilio's Messages list for the recipient since the claim and
   matches the touch key carried in the status-callback URL; a found message is
   recorded as sent with its provider id, a missing one goes back to ``planned``;
2. the provider's own dedup (adapter ``dedups_by_key``): WeChat/e-mail style
   providers that reject or ignore a second request with the same key get a keyed
   re-send (back to ``planned``);
3. neither: the outcome cannot be known, and "at most once" wins: the touch fails
   with ``interrupted`` for a person to look at, rather than risk a duplicate.

Which touches are "left by a dead worker": those claimed by this worker's own id
(a restarted worker with a stable ``--worker`` id takes its predecessor's over at
once), and any whose claim is older than the lease (a batch takes seconds; the
lease defaults to five minutes).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine
from sqlmodel.sql.sqltypes import UTCDateTime

from channels.base import ChannelAdapter
from engine.claiming import begin_write
from engine.dispatch import ADDRESS_FIELD, insert_outcomes
from store.clock import as_utc, utcnow
from store.models import TouchStatus

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class PendingSend:
    """A touch whose send was interrupted, with what a provider lookup needs."""

    touch_id: int
    touch_key: str
    customer_id: int
    channel: str
    to: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    attempts: int


@runtime_checkable
class Lookup(Protocol):
    async def lookup(self, pending: list[PendingSend]) -> dict[str, str]:
        """Touch key → provider message id, for every pending touch the provider accepted."""
        ...


@dataclass
class ReconcileCounts:
    found_sent: int = 0  # the provider had it: recorded as sent
    resend: int = 0  # the provider did not have it (or dedups by key): back to planned
    unknown: int = 0  # could not be known: failed as interrupted
    by_channel: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.found_sent + self.resend + self.unknown

    def as_dict(self) -> dict[str, Any]:
        return {"found_sent": self.found_sent, "resend": self.resend, "unknown": self.unknown,
                "by_channel": dict(self.by_channel)}


def stranded(
    engine: Engine, worker_id: str | None, now: datetime, lease: timedelta = DEFAULT_LEASE,
    channels: list[str] | None = None,
) -> list[PendingSend]:
    """Touches left ``sending`` by ``worker_id`` or by anyone longer ago than ``lease``."""
    sql = (
        "SELECT t.id, t.key, t.customer_id, t.channel, t.claimed_by, t.claimed_at, t.attempts, "
        "c.phone, c.wechat_openid, c.email FROM touch t JOIN customer c ON c.id = t.customer_id "
        "WHERE t.status = :sending AND (t.claimed_by = :me OR t.claimed_at < :stale OR t.claimed_at IS NULL)"
    )
    if channels is not None:
        sql += " AND t.channel IN :channels"
    binds = [bindparam("stale", type_=UTCDateTime())]
    if channels is not None:
        binds.append(bindparam("channels", expanding=True))
    stmt = text(sql).bindparams(*binds).columns(claimed_at=UTCDateTime())
    params: dict[str, Any] = {"sending": TouchStatus.SENDING, "me": worker_id or "", "stale": now - lease}
    if channels is not None:
        params["channels"] = channels
    with engine.connect() as conn:
        rows = conn.execute(stmt, params).all()
    out = []
    for r in rows:
        address = getattr(r, ADDRESS_FIELD.get(r.channel, "phone"), None) if r.channel in ADDRESS_FIELD else None
        claimed_at = as_utc(r.claimed_at) if r.claimed_at else None
        out.append(PendingSend(int(r.id), r.key, int(r.customer_id), r.channel, address, r.claimed_by,
                               claimed_at, int(r.attempts)))
    return out


async def reconcile(
    engine: Engine,
    adapters: dict[str, ChannelAdapter],
    *,
    worker_id: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
    now: datetime | None = None,
) -> ReconcileCounts:
    """Settle stranded ``sending`` touches of the channels in ``adapters`` (see the module doc)."""
    moment = now or utcnow()
    pending = stranded(engine, worker_id, moment, lease, channels=sorted(adapters))
    counts = ReconcileCounts()
    if not pending:
        return counts
    by_channel: dict[str, list[PendingSend]] = defaultdict(list)
    for p in pending:
        by_channel[p.channel].append(p)

    found: list[tuple[PendingSend, str]] = []
    resend: list[PendingSend] = []
    unknown: list[PendingSend] = []
    for channel, items in by_channel.items():
        counts.by_channel[channel] = len(items)
        adapter = adapters[channel]
        if isinstance(adapter, Lookup):
            accepted = await adapter.lookup(items)
            for p in items:
                if p.touch_key in accepted:
                    found.append((p, accepted[p.touch_key]))
                else:
                    resend.append(p)
        elif getattr(adapter, "dedups_by_key", False):
            resend.extend(items)
        else:
            unknown.extend(items)

    _settle(engine, found, resend, unknown, moment)
    counts.found_sent, counts.resend, counts.unknown = len(found), len(resend), len(unknown)
    log.warning("reconciled %d interrupted touches: %s", counts.total, counts.as_dict())
    return counts


def _settle(engine: Engine, found: list[tuple[PendingSend, str]], resend: list[PendingSend],
            unknown: list[PendingSend], now: datetime) -> None:
    guard = "AND status = :sending AND claimed_by IS NOT DISTINCT FROM :was"
    with engine.connect() as conn:
        begin_write(conn)
        if conn.dialect.name == "sqlite":
            guard = "AND status = :sending AND claimed_by IS :was"
        base = {"sending": TouchStatus.SENDING, "now": now}
        if found:
            conn.execute(
                text(
                    "UPDATE touch SET status = :sent, provider_message_id = :pmid, sent_at = :now, "
                    f"error_class = NULL, error_reason = NULL WHERE id = :id {guard}"
                ).bindparams(bindparam("now", type_=UTCDateTime())),
                [{**base, "sent": TouchStatus.SENT, "pmid": pmid, "id": p.touch_id, "was": p.claimed_by}
                 for p, pmid in found],
            )
            insert_outcomes(conn, [_outcome(p, "sent", now, {"provider_message_id": pmid, "reconciled": True})
                                   for p, pmid in found])
        if resend:
            # attempts stays as the claim left it: the interrupted try counts as one.
            conn.execute(
                text(
                    "UPDATE touch SET status = :planned, next_attempt_at = :now, claimed_by = NULL, "
                    f"error_class = 'retryable', error_reason = 'interrupted: re-send' WHERE id = :id {guard}"
                ).bindparams(bindparam("now", type_=UTCDateTime())),
                [{**base, "planned": TouchStatus.PLANNED, "id": p.touch_id, "was": p.claimed_by} for p in resend],
            )
        if unknown:
            conn.execute(
                text(
                    "UPDATE touch SET status = :failed, error_class = 'unknown', "
                    f"error_reason = 'interrupted: delivery unknown' WHERE id = :id {guard}"
                ),
                [{**base, "failed": TouchStatus.FAILED, "id": p.touch_id, "was": p.claimed_by} for p in unknown],
            )
            insert_outcomes(conn, [_outcome(p, "failed", now, {"error_class": "unknown", "reason": "interrupted"})
                                   for p in unknown])
        conn.commit()


def _outcome(p: PendingSend, kind: str, now: datetime, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "dedup_key": f"dispatch:{p.touch_key}:{p.channel}:{p.attempts}:{kind}"[:255],
        "touch_id": p.touch_id,
        "customer_id": p.customer_id,
        "channel": p.channel,
        "kind": kind,
        "detail": detail,
        "occurred_at": now,
    }
