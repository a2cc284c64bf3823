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

import asyncio
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


class TwilioListing:
    """Asks Twilio which messages went to a recipient since a moment (Messages list, ``To`` +
    ``DateSent>``) and matches them to interrupted touches.

    Twilio's Message resource does not carry our key, so the match is by elimination: a
    message Twilio holds for this recipient since the claim whose SID no touch of ours has
    recorded can only be the interrupted send. With several interrupted touches to one
    recipient and fewer unrecorded messages than touches the match is ambiguous, and those
    touches are left unknown (failed as interrupted) rather than guessed.
    """

    def __init__(self, adapter: Any, engine: Engine) -> None:
        self.client = adapter.client
        self.engine = engine
        self.ambiguous: set[str] = set()  # touch keys that could not be told apart

    async def lookup(self, pending: list[PendingSend]) -> dict[str, str]:
        by_to: dict[str, list[PendingSend]] = defaultdict(list)
        for p in pending:
            if p.to:
                by_to[p.to].append(p)
        found: dict[str, str] = {}
        self.ambiguous = set()

        async def one(to: str, items: list[PendingSend]) -> None:
            since = min((p.claimed_at for p in items if p.claimed_at), default=None)
            since = (since or utcnow()) - timedelta(minutes=1)
            listed = await self.client.messages.list_async(to=to, date_sent_after=since)
            sids = [m.sid for m in listed]
            unrecorded = [sid for sid in sids if sid not in recorded]
            if len(unrecorded) >= len(items):
                # Every one of them went out. Which SID is whose does not matter for
                # receipts, which name their touch by the key in the callback URL.
                for p, sid in zip(items, unrecorded, strict=False):
                    found[p.touch_key] = sid
            elif unrecorded:
                self.ambiguous.update(p.touch_key for p in items)

        recorded = _recorded_sids(self.engine, [p.customer_id for p in pending])
        sem = asyncio.Semaphore(32)

        async def bounded(to: str, items: list[PendingSend]) -> None:
            async with sem:
                await one(to, items)

        await asyncio.gather(*(bounded(to, items) for to, items in by_to.items()))
        return found


def _recorded_sids(engine: Engine, customer_ids: list[int]) -> set[str]:
    if not customer_ids:
        return set()
    stmt = text(
        "SELECT provider_message_id FROM touch WHERE customer_id IN :ids AND provider_message_id IS NOT NULL"
    ).bindparams(bindparam("ids", expanding=True))
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(stmt, {"ids": sorted(set(customer_ids))})}


def _lookup_for(adapter: Any, engine: Engine) -> Any:
    """The way to ask ``adapter``'s provider about interrupted sends, if there is one."""
    if isinstance(adapter, Lookup):
        return adapter
    client = getattr(adapter, "client", None)
    if getattr(adapter, "channel", None) == "sms" and client is not None and hasattr(client, "messages"):
        return TwilioListing(adapter, engine)
    return None


def _dedups_by_key(adapter: Any) -> bool:
    # WeChat template sends carry client_msg_id (derived from the touch key): WeChat drops
    # a repeat within its dedup window, so a keyed re-send is safe.
    return bool(getattr(adapter, "dedups_by_key", False)) or type(adapter).__name__ == "WeChatTemplateAdapter"


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
        asker = _lookup_for(adapter, engine)
        if asker is not None:
            accepted = await asker.lookup(items)
            ambiguous: set[str] = getattr(asker, "ambiguous", set())
            for p in items:
                if p.touch_key in accepted:
                    found.append((p, accepted[p.touch_key]))
                elif p.touch_key in ambiguous or not p.to:
                    unknown.append(p)
                else:
                    resend.append(p)
        elif _dedups_by_key(adapter):
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
