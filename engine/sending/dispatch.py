"""Dispatch: claim due touches in batches, render them, send them through the channels, record the results.

One batch goes through four steps, each one round trip or one bulk statement:

1. claim (``engine.sending.claiming``): up to ``batch_size`` due touches become ``sending`` for
   this worker, committed *before* anything is sent, so a crash leaves them visibly
   in flight for ``engine.sending.reconcile`` rather than silently lost or silently re-sent;
2. prepare: one query loads their customers and one the marketing touches that went out to
   them, then each touch is checked again against the delivery rules the planner applied
   earlier, because what the planner saw may have changed since:
   - consent: a touch whose channel lost consent (an opt-out, a consent withdrawn in an
     import) is not sent there; a service touch moves to the next consented, reachable
     channel of its own list, a marketing one is cancelled (``channels.routing``, the choice
     an opt-out reply makes for the touches still planned, so both paths agree);
   - the marketing cap: a marketing touch that no longer fits beside those already gone out
     is dropped (``engine.sending.cap_check``);
   - the journey: a touch of a journey switched off, removed or edited since it was planned is cancelled
     (``engine.sending.sendable``; an edit's goes back to the planner, ``engine.language.journey_edits``);
   each with its reason on the touch and in an outcome; one claimed late into its quiet hours goes back to
   planned until their end (``engine.sending.quiet_hold``). The rest are rendered and addressed;
3. send: per channel, chunks go to the adapter concurrently, each chunk paying the
   channel's rate limiter first;
4. record: executemany UPDATEs per kind of result (sent, retry, fallback, held, failed, unknown)
   and one executemany INSERT of outcomes, in one transaction.

A result of class ``unknown`` (the request went out and no definite answer came back: the
reply was lost, or was a server error, which a provider can send after taking the message;
``channels.errors``) is never retried blindly: on a channel whose provider can be asked
(Twilio's Messages list) the touch stays ``sending`` with ``error_class = 'unknown'`` and is
settled by ``engine.sending.reconcile`` once ``LOOKUP_DELAY`` has passed (each
``run_until_idle`` starts by settling what is due); on a channel that cannot be asked it
fails with that reason.

Several lanes run batches concurrently in one process (database work in threads), overlapping database and sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session

from channels.base import ChannelAdapter, OutboundMessage, RenderedMessage, SendResult
from channels.routing import ADDRESS_FIELD, can_use, first_usable, reroute_without_consent
from engine.language.durations import parse_duration
from engine.language.journey_edits import EDITED, withdraw
from engine.language.rendering import signed_unsubscribe_link
from engine.language.settings_model import DeliveryConfig
from engine.sending import recording
from engine.sending.adapters_from_env import build_adapters, callback_url_from_env
from engine.sending.batch_customers import load_customers
from engine.sending.cap_check import CHANNEL_RULE, JOURNEY_RULE, over_cap, over_limits
from engine.sending.channel_stop import PUT_BACK, Stop, channels_to_claim, record_stops, stop_for
from engine.sending.claim_lease import RENEW_AFTER, TAKEN_OVER, renew, taken_over
from engine.sending.claiming import ClaimedTouch, claim_due
from engine.sending.dispatch_counts import DispatchCounts
from engine.sending.expiry import EXPIRED, expired
from engine.sending.journey_rules import InForceRules, JourneyRules
from engine.sending.quiet_hold import HOLD, Held, hold_rows, quiet_hold
from engine.sending.rate_limit import RateLimiter
from engine.sending.reconcile import LOOKUP_DELAY, has_lookup, reconcile
from engine.sending.retry import decide, out_of_quiet_hours
from engine.sending.sendable import JOURNEY_OFF, unsendable
from engine.sending.unfollowed import NOT_FOLLOWING, record_not_following
from engine.sending.worker_lease import WorkerLease, default_worker_id, worker_id_fault
from store.clock import utcnow
from store.masking import mask_text
from store.models import WEBHOOK_CHANNEL, Customer, TouchStatus

log = logging.getLogger(__name__)

DEFAULT_BATCH = 1000
DEFAULT_LANES = 2


class Renderer(Protocol):
    def render_all(
        self, session: Session, touches: Sequence[ClaimedTouch], customers: dict[int, Customer], now: datetime
    ) -> list[RenderedMessage | BaseException]:
        """One message per touch, in order; an exception in place of a touch that cannot be rendered
        (a permanent failure of that touch). Context lookups are made for the whole batch at once."""
        ...


# Dropped by a delivery rule when sending (status dropped, no fallback): a cap, or too late (engine.sending.expiry).
_CAPS = ("marketing_cap", CHANNEL_RULE, JOURNEY_RULE, EXPIRED)
# The cap as config/delivery.yaml sets it when nothing else is given.
_DEFAULT_DELIVERY = DeliveryConfig()
# An unconfirmed send stays 'sending' under this worker's claim (so no worker takes it again);
# engine.sending.reconcile asks the provider about it from next_attempt_at on.
_UNANSWERED = "error_class = :cls, error_reason = :reason, next_attempt_at = :next"
# A fast delivery receipt may have settled the touch before its send is recorded (found by the touch_key of
# its callback URL): a failure it recorded keeps its class and reason, which the send's success used to wipe.
_SENT = (
    "status = CASE WHEN status = :sending THEN :sent ELSE status END, sent_at = :now, provider_message_id = :pmid, "
    "error_class = CASE WHEN status = :failed THEN error_class END, "
    "error_reason = CASE WHEN status = :failed THEN error_reason END"
)


@dataclass
class _Prepared:
    """A claimed batch, split into what goes out and what was settled without sending."""

    touches: dict[int, ClaimedTouch]
    outbound: dict[str, list[OutboundMessage]]  # channel -> messages
    settled: list[tuple[ClaimedTouch, SendResult]]  # no consent / over the cap / no address / render error
    customers: dict[int, Customer] = field(default_factory=dict)  # where a failed touch may fall back to
    webhook_targets: dict[int, str] = field(default_factory=dict)  # a webhook touch's target
    held: list[Held] = field(default_factory=list)  # claimed in their channel's quiet hours: not sent


def _reason(text_: str | None) -> str | None:
    # Provider messages quote the number they rejected; the store is read by people.
    return mask_text(text_)[:255] if text_ else None


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        adapters: dict[str, ChannelAdapter],
        renderer: Renderer,
        *,
        worker_id: str | None = None,
        batch_size: int = DEFAULT_BATCH,
        lanes: int = DEFAULT_LANES,
        max_attempts: int = 5,
        rate_limits: dict[str, float] | None = None,
        rate_share: int | None = None,
        callback_url: Callable[[str, ClaimedTouch], str | None] | None = None,
        clock: Callable[[], datetime] = utcnow,
        marketing_cap: int = _DEFAULT_DELIVERY.marketing_cap,
        marketing_cap_window: timedelta | None = None,
        channel_caps: Mapping[str, tuple[int, timedelta]] | None = None,
        journey_rules: Callable[[], JourneyRules] | None = None,
        quiet: DeliveryConfig | None = None,  # the quiet hours a send, retry or fallback is held out of (None: none)
    ) -> None:
        self.engine = engine
        self.adapters = adapters
        self.renderer = renderer
        self.worker_id = worker_id or default_worker_id()
        fault = worker_id_fault(self.worker_id)
        if fault is not None:
            raise ValueError(f"worker id {self.worker_id!r} {fault}")
        # The id is this process's alone while it dispatches (engine.sending.worker_lease): taken before the
        # first claim or settling, let go of by aclose.
        self.lease = WorkerLease(engine, self.worker_id, clock)
        self._taking = threading.Lock()
        self._settled_before = False
        self.batch_size = batch_size
        self.lanes = max(1, lanes)
        self.max_attempts = max_attempts
        self.limiter = RateLimiter(rate_limits or {}, share=rate_share)
        self.callback_url = callback_url
        self.clock = clock
        self.marketing_cap = marketing_cap
        self.marketing_cap_window = marketing_cap_window or parse_duration(_DEFAULT_DELIVERY.marketing_cap_window)
        self.channel_caps = dict(channel_caps or {})
        # Webhook targets and journeys' own caps, of the journeys in force (engine.sending.journey_rules).
        self.journey_rules = journey_rules or JourneyRules
        self.lookup_delay = LOOKUP_DELAY
        self.quiet = quiet
        self._askable = {channel for channel, adapter in adapters.items() if has_lookup(adapter)}

    @property
    def claim_id(self) -> str:
        """What this process's claims carry: the worker id and the instance holding it."""
        return self.lease.claim_id

    def hold(self) -> None:
        """Take the worker id if this process does not hold it yet; ``WorkerIdHeld`` if a live one does."""
        with self._taking:
            if not self.lease.held:
                self.lease.take()

    async def start(self) -> None:
        """``hold`` before anything else: a dispatcher refused its id says so before it settles or sends."""
        await asyncio.to_thread(self.hold)

    # ---- one batch -------------------------------------------------------------------

    def _claim_and_prepare(self, now: datetime) -> _Prepared | None:
        self.hold()
        if self.lease.lost.is_set():  # another process has the id now: nothing more is claimed under it
            return None
        channels = channels_to_claim(self.engine, self.adapters, now)
        claimed = claim_due(self.engine, self.claim_id, self.batch_size, now, channels=channels)
        if not claimed:
            return None
        prepared = _Prepared(touches={t.id: t for t in claimed}, outbound=defaultdict(list), settled=[])
        sendable: list[ClaimedTouch] = []
        with Session(self.engine, expire_on_commit=False) as session:
            customers = load_customers(session, {t.customer_id for t in claimed})
            prepared.customers = customers
            rules = self.journey_rules()
            for touch in claimed:
                if touch.channel == WEBHOOK_CHANNEL:
                    target = rules.webhook_targets.get((touch.journey_id, touch.step_id))
                    if target is not None:
                        prepared.webhook_targets[touch.id] = target
                settled = unsendable(touch, customers.get(touch.customer_id), prepared.webhook_targets, rules) \
                    or expired(touch, now, self.quiet, rules)
                if settled is not None:
                    prepared.settled.append((touch, settled))
                elif (held := quiet_hold(touch, customers.get(touch.customer_id), now, self.quiet)) is not None:
                    prepared.held.append(held)
                else:
                    sendable.append(touch)
            capped = over_cap(session, sendable, set(prepared.touches), self.marketing_cap, self.marketing_cap_window)
            if capped:
                prepared.settled.extend(
                    (t, SendResult(t.key, False, error_class="permanent", error_code="marketing_cap",
                                   error_reason=capped[t.id]))
                    for t in sendable if t.id in capped)
                sendable = [t for t in sendable if t.id not in capped]
            limited = over_limits(session, sendable, set(prepared.touches), self.channel_caps, rules.caps)
            if limited:
                prepared.settled.extend(
                    (t, SendResult(t.key, False, error_class="permanent", error_code=limited[t.id].split(":", 1)[0],
                                   error_reason=limited[t.id]))
                    for t in sendable if t.id in limited)
                sendable = [t for t in sendable if t.id not in limited]
            rendered = self.renderer.render_all(session, sendable, customers, now) if sendable else []
        for touch, content in zip(sendable, rendered, strict=True):
            customer = customers[touch.customer_id]
            if isinstance(content, BaseException):
                # A bad template fails this touch (and falls back), not the batch.
                prepared.settled.append(
                    (touch, SendResult(touch.key, False, error_class="permanent", error_code="render",
                                       error_reason=f"render: {content}"))
                )
                continue
            prepared.outbound[touch.channel].append(
                OutboundMessage(
                    touch_id=touch.id,
                    touch_key=touch.key,
                    to=prepared.webhook_targets[touch.id] if touch.channel == WEBHOOK_CHANNEL
                    else getattr(customer, ADDRESS_FIELD[touch.channel]),
                    content=content,
                    category=touch.category,
                    status_callback_url=self.callback_url(touch.channel, touch) if self.callback_url else None,
                    unsubscribe_url=signed_unsubscribe_link(customer, touch.channel)
                    if touch.channel == "email" and touch.category == "marketing" else None,
                )
            )
        return prepared

    async def _still_mine(self, chunk: list[OutboundMessage], claimed_at: datetime) -> set[int]:
        ids = [m.touch_id for m in chunk]
        if self.lease.lost.is_set():  # its successor under the id settles what this process claimed
            return set()
        if self.clock() - claimed_at <= RENEW_AFTER:
            return set(ids)
        return await asyncio.to_thread(renew, self.engine, self.claim_id, ids, self.clock())

    async def _send_channel(self, channel: str, messages: list[OutboundMessage],
                            claimed_at: datetime) -> list[SendResult]:
        adapter = self.adapters[channel]
        rate = self.limiter.rate(channel)
        # Chunks of a tenth of a second's worth: the limiter paces them, and several are
        # in flight at once so the adapter's connection pool stays full.
        size = max(1, min(len(messages), int(rate / 10) if rate else len(messages), 500))
        chunks = [messages[i : i + size] for i in range(0, len(messages), size)]

        async def one(whole: list[OutboundMessage]) -> list[SendResult]:
            await self.limiter.acquire(channel, len(whole))
            # A batch slower than the claim's lease (engine.sending.claim_lease) sends only what is still its own.
            mine = await self._still_mine(whole, claimed_at)
            chunk = [m for m in whole if m.touch_id in mine]
            try:
                results = await adapter.send_batch(chunk) if chunk else []
                if len(results) != len(chunk):
                    raise RuntimeError(f"adapter {channel} answered {len(results)} results for {len(chunk)} messages")
            except Exception as exc:
                # The adapter contract is never to raise; if one does, part of the chunk may
                # have gone out, so its delivery is unknown (reconciled, never blindly re-sent).
                log.exception("adapter %s raised on a chunk of %d", channel, len(chunk))
                results = [SendResult(m.touch_key, False, error_class="unknown", error_code="adapter_error",
                                      error_reason=f"{type(exc).__name__}: {exc}") for m in chunk]
            answered = iter(results)
            return [next(answered) if m.touch_id in mine else taken_over(m.touch_key) for m in whole]

        parts = await asyncio.gather(*(one(c) for c in chunks))
        return [r for part in parts for r in part]

    def _record(self, prepared: _Prepared, results: Sequence[tuple[ClaimedTouch, SendResult]],
                now: datetime) -> DispatchCounts:
        counts = DispatchCounts(claimed=len(prepared.touches), batches=1, held=len(prepared.held))
        sent: list[dict[str, Any]] = []
        retry: list[dict[str, Any]] = []
        fallback: list[dict[str, Any]] = []
        final: list[dict[str, Any]] = []
        unanswered: list[dict[str, Any]] = []
        outcomes: list[dict[str, Any]] = []
        put_back: list[dict[str, Any]] = []
        stops: list[Stop] = []
        for touch, result in results:
            if result.error_code == TAKEN_OVER:
                continue
            if result.ok:
                counts.sent += 1
                sent.append({"id": touch.id, "pmid": result.provider_message_id})
                outcomes.append(_outcome(touch, "sent", now, {"provider_message_id": result.provider_message_id,
                                                             "status": result.provider_status}))
                continue
            if (stop := stop_for(touch.channel, result.error_code, now)) is not None:  # the account's, not hers
                stops.append(stop)
                put_back.append({"id": touch.id, "cls": "retryable", "reason": stop.reason, "next": stop.until})
                continue
            reason = _reason(result.error_reason) or result.error_code or "unknown"
            base = {"id": touch.id, "cls": result.error_class or "permanent", "reason": reason}
            if result.error_class == "unknown":
                # It may have been delivered: no retry, no fallback (the customer could get it twice).
                if touch.channel in self._askable:
                    counts.unanswered += 1
                    unanswered.append({**base, "reason": f"unconfirmed, to be looked up: {reason}"[:255],
                                       "next": now + self.lookup_delay})
                else:
                    counts.failed["unknown"] += 1
                    base["reason"] = f"delivery unknown: {reason}"[:255]
                    final.append({**base, "status": TouchStatus.FAILED})
                    outcomes.append(_outcome(touch, "failed", now, {
                        "error_class": "unknown", "error_code": result.error_code, "reason": base["reason"],
                        "attempts": touch.attempts}))
                continue
            detail = {"error_class": base["cls"], "error_code": result.error_code, "reason": reason,
                      "attempts": touch.attempts}
            customer = prepared.customers.get(touch.customer_id)
            tz = customer.timezone if customer is not None else None

            def usable(channel: str, customer: Customer | None = customer, category: str = touch.category) -> bool:
                return customer is not None and customer.anonymised_at is None and can_use(customer, channel, category)

            if result.error_code in _CAPS:
                counts.dropped += 1
                final.append({**base, "status": TouchStatus.DROPPED})
                outcomes.append(_outcome(touch, "dropped", now, detail))
                continue
            if result.error_code in (JOURNEY_OFF, EDITED):
                counts.cancelled += 1
                final.append({**base, "status": TouchStatus.CANCELLED})
                outcomes.append(_outcome(touch, "cancelled", now, detail))
                continue
            if result.error_code == "no_consent":
                choice = reroute_without_consent(touch.category, touch.channel, touch.fallback_channels, usable,
                                                 reason)
                base["reason"] = detail["reason"] = choice.reason[:255]
                if choice.cancelled:
                    counts.cancelled += 1
                    final.append({**base, "status": TouchStatus.CANCELLED})
                    outcomes.append(_outcome(touch, "cancelled", now, detail))
                else:
                    counts.fell_back += 1
                    fallback.append({**base, "channel": choice.channel, "fb": choice.fallback_channels,
                                     "next": out_of_quiet_hours(now, touch.urgent, tz, choice.channel, self.quiet)})
                    outcomes.append(_outcome(touch, "failed", now, {**detail, "fallback": choice.channel}))
                continue
            error_class = "permanent" if result.error_code == "no_customer" else result.error_class
            decision = decide(error_class, touch.attempts, touch.fallback_channels, self.max_attempts, now)
            if decision.action == "retry":
                counts.deferred += 1
                retry.append({**base, "next": out_of_quiet_hours(decision.next_attempt_at, touch.urgent, tz,
                                                                  touch.channel, self.quiet)})
                continue
            # Where to fall back to is the choice every path makes (channels.routing): the next
            # channel of the touch's list the customer still consents to and can be reached on.
            found = first_usable(touch.fallback_channels, usable) if decision.action == "fallback" else None
            if found is not None:
                counts.fell_back += 1
                fallback.append({**base, "channel": found[0], "fb": found[1], "next": out_of_quiet_hours(
                    decision.next_attempt_at, touch.urgent, tz, found[0], self.quiet)})
                outcomes.append(_outcome(touch, "failed", now, {**detail, "fallback": found[0]}))
                continue
            if touch.fallback_channels:
                base["reason"] = detail["reason"] = (
                    f"{reason}; no consented, reachable channel left among {', '.join(touch.fallback_channels)}"
                )[:255]
            if result.error_class == "retryable":
                klass = "exhausted"
            elif result.error_code in ("no_address", "render", "no_customer"):
                klass = str(result.error_code)
            else:
                klass = "permanent"
            counts.failed[klass] += 1
            final.append({**base, "status": TouchStatus.FAILED})
            outcomes.append(_outcome(touch, "failed", now, detail))

        params = {"w": self.claim_id, "sending": TouchStatus.SENDING, "now": now}
        with self.engine.begin() as conn:
            # Every statement matches on claimed_by (this process's claim id): if reconcile took a touch away
            # from a worker it believed dead, that worker's late result cannot overwrite it.
            # A fast delivery receipt may already have moved the touch past 'sending'.
            recording.update_touches(conn, _SENT, "AND claimed_by = :w", sent,
                                     {**params, "sent": TouchStatus.SENT, "failed": TouchStatus.FAILED})
            guard = "AND claimed_by = :w AND status = :sending"
            planned = {**params, "planned": TouchStatus.PLANNED}
            recording.update_touches(conn, recording.REPLAN, guard, retry, planned)
            recording.update_touches(conn, recording.FALL_BACK, guard, fallback, planned)
            recording.update_touches(conn, PUT_BACK, guard, put_back, planned)
            record_stops(conn, stops, now)
            recording.update_touches(conn, HOLD, guard, hold_rows(prepared.held), planned)
            recording.update_touches(conn, _UNANSWERED, guard, unanswered, params)
            recording.update_touches(conn, recording.FINISH, guard, final, params)
            withdraw(conn, [t.id for t, r in results if r.error_code == EDITED], TouchStatus.CANCELLED)
            recording.insert_outcomes(conn, outcomes)
            recording.insert_events(conn, _webhook_events(prepared, sent, final, now))
        record_not_following(self.engine, [(t.customer_id, t.key) for t, r in results
                                           if t.channel == "wechat" and r.error_code == NOT_FOLLOWING], now)
        return counts

    async def run_batch(self, now: datetime | None = None) -> DispatchCounts | None:
        """Claim, render, send and record one batch; None when nothing was due."""
        moment = now or self.clock()
        prepared = await asyncio.to_thread(self._claim_and_prepare, moment)
        if prepared is None:
            return None
        sends = {ch: asyncio.ensure_future(self._send_channel(ch, msgs, moment))
                 for ch, msgs in prepared.outbound.items()}
        results: list[tuple[ClaimedTouch, SendResult]] = list(prepared.settled)
        for channel, task in sends.items():
            for message, result in zip(prepared.outbound[channel], await task, strict=True):
                results.append((prepared.touches[message.touch_id], result))
        # Recording uses the time the results came in (retries back off from then).
        finished = now or self.clock()
        return await asyncio.to_thread(self._record, prepared, results, finished)

    # ---- loops -----------------------------------------------------------------------

    async def run_until_idle(
        self, now: datetime | None = None, stop: asyncio.Event | None = None, max_batches: int | None = None
    ) -> DispatchCounts:
        """Dispatch until nothing is due (or ``stop`` is set): the current batch of each lane always finishes."""
        total = DispatchCounts()
        started = time.perf_counter()
        total.reconciled.update(await self.settle_unanswered(now))
        budget = [max_batches]

        async def lane() -> None:
            while not (stop and stop.is_set()):
                if budget[0] is not None:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                counts = await self.run_batch(now)
                if counts is None:
                    return
                total.merge(counts)
                log.info("dispatch batch (%s): %s", self.worker_id, counts.summary())

        await asyncio.gather(*(lane() for _ in range(self.lanes)))
        total.seconds = time.perf_counter() - started
        return total

    async def run_forever(self, stop: asyncio.Event, idle_seconds: float = 1.0) -> DispatchCounts:
        """Dispatch continuously until ``stop``; when idle, look again every ``idle_seconds``. Returns early if
        another process took the worker id over (this one was not seen past the lease): it sends nothing more."""
        total = DispatchCounts()
        while not stop.is_set() and not self.lease.lost.is_set():
            counts = await self.run_until_idle(stop=stop)
            total.merge(counts)
            if counts.claimed == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=idle_seconds)
        return total

    async def settle_unanswered(self, now: datetime | None = None) -> Counter[str]:
        """Run ``engine.sending.reconcile`` for this worker: unanswered sends now due to be looked up, and
        any left ``sending`` under its id: the first time, by the processes that held the id before this one
        (this one holds it now, so none of them is alive); then by this process only (none while its batches
        are not in flight), so that a predecessor that lost the id and claimed again before it noticed is
        settled after the claim's lease, as any other worker's, not while it sends."""
        await self.start()
        mine = self.claim_id if self._settled_before else self.worker_id
        counts = await reconcile(self.engine, self.adapters, worker_id=mine, now=now or self.clock(),
                                 max_attempts=self.max_attempts)
        self._settled_before = True
        return Counter({k: v for k, v in counts.as_dict().items() if isinstance(v, int) and v})

    async def aclose(self) -> None:
        """Let go of the worker id (the next process given it takes it at once) and close the adapters."""
        try:
            await asyncio.to_thread(self.lease.release)
        except Exception:  # the id then frees itself when its lease runs out
            log.warning("letting go of worker id %r failed", self.worker_id, exc_info=True)
        for adapter in self.adapters.values():
            try:
                await adapter.aclose()
            except Exception:  # closing is best effort; the process is going away
                log.warning("closing adapter %s failed", getattr(adapter, "channel", "?"), exc_info=True)


def _webhook_events(prepared: _Prepared, sent: list[dict[str, Any]], final: list[dict[str, Any]],
                    now: datetime) -> list[dict[str, Any]]:
    """``webhook.<target>.succeeded|failed`` for the webhook touches settled in this batch: what a
    ``wait_for`` or a branch after the step reads (one per touch, keyed on it)."""
    rows: list[dict[str, Any]] = []
    # Failed for good, or dropped by a cap: either way the call did not happen.
    ended = [(row, "succeeded") for row in sent] + [(row, "failed") for row in final
                                                    if row["status"] in (TouchStatus.FAILED, TouchStatus.DROPPED)]
    for row, result in ended:
        target = prepared.webhook_targets.get(row["id"])
        if target is None:
            continue
        touch = prepared.touches[row["id"]]
        # journey and occurrence: the enrollment whose wait_for this event answers (engine.planning).
        data: dict[str, Any] = {"target": target, "touch_id": touch.id, "journey": touch.journey_id,
                                "step": touch.step_id, "occurrence": touch.occurrence, "attempts": touch.attempts}
        if result == "failed":
            data["reason"] = row["reason"]
        rows.append({"external_id": f"webhook:{touch.key}"[:128], "type": f"webhook.{target}.{result}",
                     "customer_id": touch.customer_id, "data": data, "occurred_at": now, "received_at": now})
    return rows


def _outcome(touch: ClaimedTouch, kind: str, now: datetime, detail: dict[str, Any]) -> dict[str, Any]:
    return recording.outcome_row(touch.id, touch.key, touch.customer_id, touch.channel, touch.attempts, kind, now,
                                 {k: v for k, v in detail.items() if v is not None})


# ---- wiring from configuration ----------------------------------------------------------

# The collector's first-generation threshold in a process that dispatches (see _freeze_long_lived).
DISPATCH_GC_THRESHOLD = 50_000


@functools.cache
def _freeze_long_lived() -> None:
    """Once per process, when the first dispatcher is made: what is alive then (modules, settings, the journeys'
    report, Prefect's machinery) lives as long as the process, and without this every full collection the
    batches' allocations set off walks all of it again (about a sixth of a send's CPU, profiled)."""
    gc.collect()
    gc.freeze()
    # A batch keeps its claimed rows, rendered messages and results alive while it sends (about 80
    # container objects a send), so with Python's default threshold (700) the collector ran every few
    # sends and took 25-40% of a send's CPU (measured with gc.callbacks, 20,000 sends to the Twilio
    # stand-in); at 10,000 it runs about six times less often and its time per send falls from 83-100 µs
    # to 35-41 µs. At 10,000 it still ran about once a batch (20 collections in 20,000 sends of batches of 1,000
    # on 3 lanes, 3.4 µs a send) over objects nearly all alive (some 30 freed a collection); at 50,000 it did
    # not run while they were sent, as a batch's objects are freed when it is recorded. The higher threshold
    # leaves the few cyclic objects a batch makes uncollected a little longer.
    generation0, generation1, generation2 = gc.get_threshold()
    gc.set_threshold(max(generation0, DISPATCH_GC_THRESHOLD), generation1, generation2)


def make_dispatcher(
    engine: Engine,
    adapters: dict[str, ChannelAdapter] | None = None,
    *,
    worker_id: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    lanes: int = DEFAULT_LANES,
    renderer: Renderer | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Dispatcher:
    """A dispatcher with the delivery configuration (rate limits, max attempts, marketing and channel caps),
    the journeys' webhook targets and caps, the store renderer and the adapters from the environment,
    unless given."""
    from engine.language.settings_review import delivery_settings
    from engine.sending.render_batch import StoreRenderer

    # The approved delivery settings (a changed config/delivery.yaml waits for review), footer included.
    delivery = delivery_settings(engine)
    # The journeys in force are loaded (the files validated, about a second) when the dispatcher is made,
    # as the delivery settings are, rather than by the first batch; batches then load again only on a change.
    journey_rules = InForceRules(engine)
    journey_rules()
    if renderer is None:
        renderer = StoreRenderer(configured_footer=delivery.marketing_sms_footer)
        renderer.warm(engine)
    _freeze_long_lived()
    return Dispatcher(
        engine,
        adapters if adapters is not None else build_adapters(),
        renderer,
        worker_id=worker_id,
        batch_size=batch_size,
        lanes=lanes,
        max_attempts=delivery.max_attempts,
        rate_limits=dict(delivery.rate_limits),
        marketing_cap=delivery.marketing_cap,
        marketing_cap_window=parse_duration(delivery.marketing_cap_window),
        channel_caps={c: (cap.count, parse_duration(cap.window)) for c, cap in delivery.channel_caps.items()},
        journey_rules=journey_rules,
        quiet=delivery,
        callback_url=callback_url_from_env(),
        clock=clock,
    )
