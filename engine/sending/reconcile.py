"""Settling touches whose send may or may not have reached the provider, without sending any twice.

Two ways a touch ends up there:

- **a crash**: a touch is ``sending`` from its claim until its result is recorded; if the
  worker dies in between, the provider may or may not have accepted it;
- **an ambiguous result**: the request went out but no definite answer came back (a
  timeout, a connection lost after the request was written, or an HTTP 5xx, which a
  provider can send after taking the message: class ``unknown`` in
  ``channels.errors``). Dispatch leaves such a touch ``sending`` with
  ``error_class = 'unknown'`` and ``next_attempt_at`` = when to ask (``LOOKUP_DELAY``
  later, so that a request the provider was still working on has been answered), and
  does not retry it. A channel with no way to ask is failed at once instead (below).

Re-sending blindly would duplicate every message that did go out; dropping it would lose
every one that did not. So each such touch is settled by asking, in this order:

1. the provider (adapter ``lookup``): did you accept a message for this touch? The SMS
   adapter asks Twilio's Messages list (``To``, ``From``, ``DateSent``) and matches by
   elimination (``TwilioListing``); a status callback that arrived meanwhile has already
   settled the touch by the key in its URL. Found: recorded as sent with the provider's
   id. Not found: sent again (or fallback / exhausted, as for any retryable failure).
   The lookup failing (Twilio down, as it may well be after a 5xx) settles nothing: the
   touch is asked about again ``LOOKUP_DELAY`` later;
2. the provider's own dedup (adapter ``dedup_window``): WeChat drops a repeat of the same
   ``client_msg_id`` within 10 minutes, so a touch interrupted by a crash is re-sent with
   its key if the window (counted from the claim) still has ``RESEND_MARGIN`` to run;
   WeChat has no lookup of template sends, so an older one is "unknown". (An ambiguous
   WeChat *result*, a lost reply or a 5xx, never comes here: the adapter repeats the keyed
   request at once.)
3. neither (e-mail over SMTP, or the window passed): the outcome cannot be known, and
   "at most once" wins: the touch fails with error class ``unknown`` and the reason,
   for a person to look at, rather than risk a duplicate.

Which touches are settled: ``sending`` ones claimed under this worker's own id (a restarted
worker with a stable ``--worker`` id takes its predecessor's over at once, once it holds the id:
``engine.sending.worker_lease``, so never a live process's), those whose
claim is older than the lease (a batch takes seconds; the lease defaults to five
minutes, and a batch that takes longer renews it: ``engine.sending.claim_lease``;
a touch whose claim changed since it was read is left as it is), and ambiguous ones whose ``next_attempt_at`` has come.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import JSON, bindparam, text
from sqlalchemy.engine import Engine
from sqlmodel.sql.sqltypes import UTCDateTime

from channels.base import ChannelAdapter
from channels.routing import ADDRESS_FIELD
from engine.sending import recording
from engine.sending.claiming import begin_write
from engine.sending.retry import decide
from store.clock import as_utc, utcnow
from store.masking import mask_phone, mask_text
from store.models import TouchStatus

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=5)
# How long after an unanswered request the provider is asked about it.
LOOKUP_DELAY = timedelta(minutes=2)
# A keyed re-send must reach the provider this long before its dedup window closes
# (claim to send takes seconds; this leaves room for a backlog and a slow request).
RESEND_MARGIN = timedelta(minutes=3)
UNKNOWN = "unknown"
# The provider had the message: sent, with its id.
_FOUND_SENT = "status = :sent, provider_message_id = :pmid, sent_at = :now, error_class = NULL, error_reason = NULL"
# Not settled this time (the lookup failed, or another send to the number is in flight): still
# sending, asked about again from :next (not on every dispatch round, which would hammer the provider).
_ASK_LATER = "error_class = :cls, next_attempt_at = :next"
# Twilio's Message.direction of what ``messages.create`` made (not ``outbound-reply``/``-call``, ``inbound``).
_SENT_BY_API = "outbound-api"


@dataclass(frozen=True)
class PendingSend:
    """A touch whose send was interrupted or went unanswered, with what a provider lookup needs."""

    touch_id: int
    touch_key: str
    customer_id: int
    channel: str
    to: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    attempts: int
    fallback_channels: list[str] = field(default_factory=list)
    ambiguous: bool = False  # an unanswered request (dispatch), not a crash


@runtime_checkable
class Lookup(Protocol):
    async def lookup(self, pending: list[PendingSend]) -> dict[str, str]:
        """Touch key → provider message id, for every pending touch the provider accepted."""
        ...


class TwilioListing:
    """Asks Twilio which messages went to a recipient from our number since the claim (Messages
    list, ``To`` + ``From`` + ``DateSent>``) and matches them to pending touches.

    Twilio's Message resource does not carry our key (only the status callbacks do, in
    their URL), so the match is by elimination over the recipient's messages made through
    the Messages API (not the TwiML replies to their SMS) whose SID no touch of ours has
    recorded:

    - none: nothing of ours went out, the touches are sent again;
    - as many as the pending touches to that recipient: each went out;
    - any other number: which went out cannot be told, and those touches are ``ambiguous``
      (failed as unknown rather than guessed).

    A recipient who has another touch ``sending`` that is not being settled now (in flight,
    or unanswered and not yet due) is ``deferred``: its message could be the unrecorded one.
    So is one whose listing fails: nothing is known, so nothing is settled.
    ``DateSent`` is a day filter at Twilio, so it starts a day before the claim; older
    messages are all recorded and drop out in the elimination.
    """

    def __init__(self, adapter: Any, engine: Engine) -> None:
        self.client = adapter.client
        self.from_number: str | None = getattr(adapter, "from_number", None)
        self.engine = engine
        self.ambiguous: set[str] = set()  # touch keys that could not be told apart
        self.deferred: set[str] = set()  # touch keys to ask about again later

    async def lookup(self, pending: list[PendingSend]) -> dict[str, str]:
        by_to: dict[str, list[PendingSend]] = defaultdict(list)
        for p in pending:
            if p.to:
                by_to[p.to].append(p)
        found: dict[str, str] = {}
        self.ambiguous, self.deferred = set(), set()
        recorded, busy = _recipient_state(self.engine, sorted(by_to), {p.touch_id for p in pending})

        async def one(to: str, items: list[PendingSend]) -> None:
            if to in busy:
                self.deferred.update(p.touch_key for p in items)
                return
            since = min((p.claimed_at for p in items if p.claimed_at), default=None) or utcnow()
            filters: dict[str, Any] = {"to": to, "date_sent_after": (since - timedelta(days=1)).date().isoformat()}
            if self.from_number:
                filters["from_"] = self.from_number
            try:
                listed = await self.client.messages.list_async(**filters)
            except Exception as exc:  # any failure to ask leaves the question open, for later
                log.warning("looking up messages to %s failed, asking again later: %s", mask_phone(to),
                            mask_text(f"{type(exc).__name__}: {exc}"))
                self.deferred.update(p.touch_key for p in items)
                return
            # Only what the Messages API created can be a touch's: a TwiML reply to the customer's
            # own SMS (our opt-out confirmation) goes from our number too, under a SID no touch records.
            unrecorded = [m.sid for m in listed if m.sid not in recorded and m.direction == _SENT_BY_API]
            if len(unrecorded) == len(items):
                # Every one of them went out. Which SID is whose does not matter for
                # receipts, which name their touch by the key in the callback URL.
                for p, sid in zip(items, unrecorded, strict=True):
                    found[p.touch_key] = sid
            elif unrecorded:
                self.ambiguous.update(p.touch_key for p in items)

        sem = asyncio.Semaphore(32)

        async def bounded(to: str, items: list[PendingSend]) -> None:
            async with sem:
                await one(to, items)

        await asyncio.gather(*(bounded(to, items) for to, items in by_to.items()))
        return found


def _recipient_state(engine: Engine, phones: list[str], settling: set[int]) -> tuple[set[str], set[str]]:
    """For these phone numbers: the message SIDs our touches recorded, and the numbers with a
    ``sending`` touch that is not among ``settling``."""
    if not phones:
        return set(), set()
    stmt = text(
        "SELECT t.id, t.status, t.provider_message_id, c.phone FROM touch t JOIN customer c ON c.id = t.customer_id "
        "WHERE c.phone IN :phones AND t.channel = 'sms' AND (t.provider_message_id IS NOT NULL OR t.status = :sending)"
    ).bindparams(bindparam("phones", expanding=True))
    recorded: set[str] = set()
    busy: set[str] = set()
    with engine.connect() as conn:
        for row in conn.execute(stmt, {"phones": phones, "sending": TouchStatus.SENDING}):
            if row.provider_message_id:
                recorded.add(row.provider_message_id)
            if row.status == TouchStatus.SENDING and int(row.id) not in settling:
                busy.add(row.phone)
    return recorded, busy


def has_lookup(adapter: Any) -> bool:
    """Whether ``adapter``'s provider can be asked about a send (see ``lookup_for``)."""
    if isinstance(adapter, Lookup):
        return True
    client = getattr(adapter, "client", None)
    return getattr(adapter, "channel", None) == "sms" and client is not None and hasattr(client, "messages")


def lookup_for(adapter: Any, engine: Engine) -> Any:
    """The way to ask ``adapter``'s provider about interrupted sends, if there is one."""
    if isinstance(adapter, Lookup):
        return adapter
    if has_lookup(adapter):
        return TwilioListing(adapter, engine)
    return None


def dedup_window(adapter: Any) -> timedelta | None:
    """How long the provider drops a repeat of the same key (WeChat: 10 minutes), if it does."""
    window = getattr(adapter, "dedup_window", None)
    return window if isinstance(window, timedelta) else None


@dataclass
class ReconcileCounts:
    found_sent: int = 0  # the provider had it: recorded as sent
    resend: int = 0  # the provider did not have it (or dedups by key): back to planned
    fell_back: int = 0  # not at the provider, retries used up: next channel
    exhausted: int = 0  # not at the provider, retries used up, no channel left: failed
    unknown: int = 0  # could not be known: failed with error class 'unknown'
    deferred: int = 0  # cannot be told apart yet from another send in flight: asked again later
    by_channel: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.found_sent + self.resend + self.fell_back + self.exhausted + self.unknown

    def as_dict(self) -> dict[str, Any]:
        return {"found_sent": self.found_sent, "resend": self.resend, "fell_back": self.fell_back,
                "exhausted": self.exhausted, "unknown": self.unknown, "deferred": self.deferred,
                "by_channel": dict(self.by_channel)}


def stranded(
    engine: Engine, worker_id: str | None, now: datetime, lease: timedelta = DEFAULT_LEASE,
    channels: list[str] | None = None,
) -> list[PendingSend]:
    """Touches to settle now: left ``sending`` by ``worker_id`` (a worker id: by any process that held it; a
    claim id: by that process) or by anyone longer ago than ``lease``, or unanswered (error class ``unknown``)
    and due to be asked about.

    An unanswered touch is never taken before its ``next_attempt_at``, even by its own
    worker or past the lease: asking the provider too early could find nothing yet."""
    sql = (
        "SELECT t.id, t.key, t.customer_id, t.channel, t.claimed_by, t.claimed_at, t.attempts, "
        "t.fallback_channels, t.error_class, c.phone, c.wechat_openid, c.email "
        "FROM touch t JOIN customer c ON c.id = t.customer_id "
        "WHERE t.status = :sending "
        "AND NOT (t.error_class = :unknown AND t.next_attempt_at IS NOT NULL AND t.next_attempt_at > :now) "
        "AND (t.claimed_by = :me OR substr(t.claimed_by, 1, :mine_len) = :mine "
        "OR t.claimed_at < :stale OR t.claimed_at IS NULL OR t.error_class = :unknown)"
    )
    if channels is not None:
        sql += " AND t.channel IN :channels"
    binds = [bindparam("stale", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime())]
    if channels is not None:
        binds.append(bindparam("channels", expanding=True))
    stmt = text(sql).bindparams(*binds).columns(claimed_at=UTCDateTime(), fallback_channels=JSON())
    # A dispatcher's claims carry its worker id and its process's instance (engine.sending.worker_lease):
    # given a worker id, those of every instance that held it; given a claim id, that instance's only.
    # (No worker: the first no characters of a claim are never '-'.)
    mine, mine_len = (f"{worker_id}#", len(worker_id) + 1) if worker_id else ("-", 0)
    params: dict[str, Any] = {"sending": TouchStatus.SENDING, "me": worker_id or "", "stale": now - lease,
                              "now": now, "unknown": UNKNOWN, "mine": mine, "mine_len": mine_len}
    if channels is not None:
        params["channels"] = channels
    with engine.connect() as conn:
        rows = conn.execute(stmt, params).all()
    out = []
    for r in rows:
        column = ADDRESS_FIELD.get(r.channel)
        address = getattr(r, column, None) if column else None
        claimed_at = as_utc(r.claimed_at) if r.claimed_at else None
        out.append(PendingSend(int(r.id), r.key, int(r.customer_id), r.channel, address, r.claimed_by,
                               claimed_at, int(r.attempts), list(r.fallback_channels or []),
                               r.error_class == UNKNOWN))
    return out


@dataclass
class _Verdicts:
    found: list[tuple[PendingSend, str]] = field(default_factory=list)
    resend: list[tuple[PendingSend, str]] = field(default_factory=list)  # (touch, reason)
    fallback: list[tuple[PendingSend, str, list[str], str]] = field(default_factory=list)  # channel, rest, reason
    failed: list[tuple[PendingSend, str, str]] = field(default_factory=list)  # (touch, error class, reason)
    later: list[PendingSend] = field(default_factory=list)  # deferred: asked about again after LOOKUP_DELAY


def _why(p: PendingSend) -> str:
    return "unconfirmed" if p.ambiguous else "interrupted"


async def reconcile(
    engine: Engine,
    adapters: dict[str, ChannelAdapter],
    *,
    worker_id: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
    now: datetime | None = None,
    max_attempts: int = 5,
) -> ReconcileCounts:
    """Settle the touches ``stranded`` returns for the channels in ``adapters`` (see the module doc)."""
    moment = now or utcnow()
    pending = stranded(engine, worker_id, moment, lease, channels=sorted(adapters))
    counts = ReconcileCounts()
    if not pending:
        return counts
    by_channel: dict[str, list[PendingSend]] = defaultdict(list)
    for p in pending:
        by_channel[p.channel].append(p)

    v = _Verdicts()
    for channel, items in by_channel.items():
        counts.by_channel[channel] = len(items)
        adapter = adapters[channel]
        asker = lookup_for(adapter, engine)
        window = dedup_window(adapter)
        if asker is not None:
            accepted = await asker.lookup(items)
            ambiguous: set[str] = getattr(asker, "ambiguous", set())
            deferred: set[str] = getattr(asker, "deferred", set())
            for p in items:
                if p.touch_key in accepted:
                    v.found.append((p, accepted[p.touch_key]))
                elif p.touch_key in deferred:
                    counts.deferred += 1
                    v.later.append(p)
                elif p.touch_key in ambiguous:
                    v.failed.append((p, UNKNOWN, f"{_why(p)}: delivery unknown (cannot be told apart at {channel})"))
                elif not p.to:
                    v.failed.append((p, UNKNOWN, f"{_why(p)}: delivery unknown (no address to look up)"))
                else:
                    _not_sent(v, p, max_attempts, moment)
        elif window is not None:
            for p in items:
                if p.claimed_at is not None and moment - p.claimed_at < window - RESEND_MARGIN:
                    v.resend.append((p, f"{_why(p)}: re-send with its key ({channel} dedups it)"))
                else:
                    v.failed.append((p, UNKNOWN, f"{_why(p)}: delivery unknown ({channel} has no lookup and its "
                                                 "dedup window has passed)"))
        else:
            v.failed.extend((p, UNKNOWN, f"{_why(p)}: delivery unknown") for p in items)

    _settle(engine, v, moment)
    counts.found_sent, counts.resend, counts.fell_back = len(v.found), len(v.resend), len(v.fallback)
    counts.exhausted = sum(1 for _, klass, _ in v.failed if klass != UNKNOWN)
    counts.unknown = len(v.failed) - counts.exhausted
    if counts.total:
        log.warning("settled %d interrupted or unanswered touches: %s", counts.total, counts.as_dict())
    return counts


def _not_sent(v: _Verdicts, p: PendingSend, max_attempts: int, now: datetime) -> None:
    """The provider has no message for ``p``: the try failed retryably, and is decided like one."""
    decision = decide("retryable", p.attempts, p.fallback_channels, max_attempts, now)
    if decision.action == "retry":
        # At once, not after a back-off: the lookup delay has already passed.
        v.resend.append((p, f"{_why(p)}: not at the provider, re-send"))
    elif decision.action == "fallback" and decision.channel is not None:
        v.fallback.append((p, decision.channel, list(decision.fallback_channels),
                           f"{_why(p)}: not at the provider, retries used up"))
    else:
        v.failed.append((p, "retryable", f"{_why(p)}: not at the provider, retries used up"))


def _settle(engine: Engine, v: _Verdicts, now: datetime) -> None:
    # Only a claim as it was read: a live worker that renewed it meanwhile (engine.sending.claim_lease)
    # is sending the touch, and a re-send decided here would be its second.
    guard = ("AND status = :sending AND claimed_by IS NOT DISTINCT FROM :was "
             "AND claimed_at IS NOT DISTINCT FROM :claimed")
    with engine.connect() as conn:
        begin_write(conn)
        if conn.dialect.name == "sqlite":
            guard = "AND status = :sending AND claimed_by IS :was AND claimed_at IS :claimed"
        base = {"sending": TouchStatus.SENDING, "now": now}
        planned = {**base, "planned": TouchStatus.PLANNED, "next": now, "cls": "retryable"}
        recording.update_touches(conn, _FOUND_SENT, guard, [
            {**base, "sent": TouchStatus.SENT, "pmid": pmid, **_as_read(p)}
            for p, pmid in v.found])
        recording.insert_outcomes(conn, [
            _outcome(p, "sent", now, {"provider_message_id": pmid, "reconciled": True}) for p, pmid in v.found])
        # attempts stays as the claim left it: the interrupted try counts as one.
        recording.update_touches(conn, recording.REPLAN, guard, [
            {**planned, **_as_read(p), "reason": reason} for p, reason in v.resend])
        recording.update_touches(conn, recording.FALL_BACK, guard, [
            {**planned, **_as_read(p), "channel": channel, "fb": rest, "reason": reason}
            for p, channel, rest, reason in v.fallback])
        recording.insert_outcomes(conn, [
            _outcome(p, "failed", now, {"error_class": "retryable", "reason": reason, "fallback": channel})
            for p, channel, _rest, reason in v.fallback])
        recording.update_touches(conn, recording.FINISH, guard, [
            {**base, "status": TouchStatus.FAILED, **_as_read(p), "cls": klass,
             "reason": reason} for p, klass, reason in v.failed])
        recording.insert_outcomes(conn, [
            _outcome(p, "failed", now, {"error_class": klass, "reason": reason}) for p, klass, reason in v.failed])
        recording.update_touches(conn, _ASK_LATER, guard, [
            {**base, "cls": UNKNOWN, "next": now + LOOKUP_DELAY, **_as_read(p)}
            for p in v.later])
        conn.commit()


def _as_read(p: PendingSend) -> dict[str, Any]:
    """The touch and its claim as ``stranded`` read them: what ``_settle``'s guard compares."""
    return {"id": p.touch_id, "was": p.claimed_by, "claimed": p.claimed_at}


def _outcome(p: PendingSend, kind: str, now: datetime, detail: dict[str, Any]) -> dict[str, Any]:
    return recording.outcome_row(p.touch_id, p.touch_key, p.customer_id, p.channel, p.attempts, kind, now, detail)
