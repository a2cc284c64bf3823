"""Exactly once when the provider's answer is lost or is a server error: a request that timed out
after the provider took it, or that it took and then answered 500 for, is never retried blindly. The
real dispatcher sends through the real adapters to the stand-ins, which accept and log a message and
then hang (``timeout_after_accept``) or answer a 5xx (``5xx_after_accept``), or answer a 5xx without
taking it (``5xx``: the client cannot tell the two 5xx apart); dispatch runs round after round with
the clock moved on, as retries and lookups fall due.

- SMS: the unconfirmed touch stays ``sending`` until reconciliation asks Twilio's Messages list
  (no status callbacks here, so the list is the only way to know), then is recorded as sent
  (found) or sent again (not found). A lookup that fails is asked again later.
- WeChat: no lookup exists; the adapter repeats the request with the same ``client_msg_id``,
  which the stand-in deduplicates as WeChat does, and gives up as "unknown" with the reason,
  never falling back to another channel. errcode -1 in a JSON answer is WeChat saying it did
  not send: that one is retried by dispatch.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from channels.base import ChannelAdapter, RenderedMessage
from channels.sms_twilio import TwilioSmsAdapter
from channels.wechat import WeChatTemplateAdapter
from engine.sending.claiming import ClaimedTouch
from engine.sending.dispatch import DispatchCounts, Dispatcher, Renderer
from standins.faults import FaultPlan
from standins.twilio_api import TwilioStandin
from standins.wechat_api import WeChatStandin
from store.clock import utcnow
from store.db import make_engine
from store.models import Customer
from tests.dispatch_support import PlainRenderer, make_customers, make_touches

FROM = "+15005550006"
CALLBACK = "http://127.0.0.1:9/hooks/twilio/status"  # carries the touch key; nothing listens


class WeChatRenderer:
    def render_all(self, session: Session, touches: Sequence[ClaimedTouch], customers: dict[int, Customer],
                   now: datetime) -> list[RenderedMessage | BaseException]:
        return [RenderedMessage(channel="wechat", template=t.template, locale="zh-CN", wechat_template_id="TPL_CARE",
                                wechat_data={"first": "您好", "remark": t.step_id}) for t in touches]


def _rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT key, status, error_class, error_reason, attempts FROM touch")).all())


def _open(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM touch WHERE status IN ('planned', 'sending')")).scalar_one())


class MixedRenderer:
    """WeChat touches as a template message, the rest as a short text."""

    def render_all(self, session: Session, touches: Sequence[ClaimedTouch], customers: dict[int, Customer],
                   now: datetime) -> list[RenderedMessage | BaseException]:
        wechat = iter(WeChatRenderer().render_all(session, [t for t in touches if t.channel == "wechat"],
                                                  customers, now))
        plain = iter(PlainRenderer().render_all(session, [t for t in touches if t.channel != "wechat"],
                                                customers, now))
        return [next(wechat) if t.channel == "wechat" else next(plain) for t in touches]


def wechat_then_sms(engine: Engine, wechat: WeChatStandin, twilio: TwilioStandin,
                    **wechat_options: Any) -> Dispatcher:
    """The real dispatcher sending WeChat template messages and SMS through the real adapters to the two
    stand-ins, as worker w1, five attempts; ``wechat_options`` go to the WeChat adapter."""
    adapters: dict[str, ChannelAdapter] = {
        "wechat": WeChatTemplateAdapter(wechat.appid, wechat.secret, api_base=wechat.base_url, timeout=10,
                                        **wechat_options),
        "sms": TwilioSmsAdapter(twilio.account_sid, twilio.auth_token, FROM, api_base=twilio.base_url, timeout=10),
    }
    return Dispatcher(engine, adapters, MixedRenderer(), worker_id="w1", batch_size=100, max_attempts=5,
                      callback_url=lambda ch, touch: CALLBACK)


def _rounds(engine: Engine, channel: str, adapter: ChannelAdapter, renderer: Renderer,
            step: timedelta) -> list[DispatchCounts]:
    """Dispatch until nothing is planned or sending, moving the clock on by ``step`` each round."""
    return _rounds_with(engine, {channel: adapter}, renderer, step)


def _rounds_with(engine: Engine, adapters: dict[str, ChannelAdapter], renderer: Renderer,
                 step: timedelta) -> list[DispatchCounts]:
    dispatcher = Dispatcher(engine, adapters, renderer, worker_id="w1", batch_size=100, lanes=2,
                            max_attempts=5, callback_url=lambda ch, touch: CALLBACK)
    rounds: list[DispatchCounts] = []

    async def run() -> None:
        now = utcnow()
        try:
            for _ in range(20):
                rounds.append(await dispatcher.run_until_idle(now=now))
                if not _open(engine):
                    return
                now += step
        finally:
            await dispatcher.aclose()

    asyncio.run(run())
    return rounds


def _timeouts(*, after_accept: bool) -> FaultPlan:
    """A quarter of the sends hang past the client's one-second timeout, before or after Twilio took them."""
    return FaultPlan(timeout_rate=0.25, hang_s=2.5, timeout_after_accept=after_accept, seed=7)


def _sms_run(db_url: str, n: int, plan: FaultPlan, *,
             timeout: float = 1.0) -> tuple[TwilioStandin, list[Any], list[DispatchCounts]]:
    """``n`` SMS touches sent to a Twilio stand-in drawing ``plan``'s faults, in rounds until all settle."""
    engine = make_engine(db_url)
    make_touches(engine, make_customers(engine, n), channel="sms")
    with TwilioStandin(callbacks=False, faults=plan) as standin:
        assert isinstance(standin, TwilioStandin)
        adapter = TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url,
                                   timeout=timeout, concurrency=32)
        # Lookups are due two minutes after the lost reply; ten-minute rounds pass that and every back-off.
        rounds = _rounds(engine, "sms", adapter, PlainRenderer(), timedelta(minutes=10))
    rows = _rows(engine)
    engine.dispose()
    return standin, rows, rounds


def test_sms_timeouts_after_accept_are_looked_up_not_resent(db_url: str) -> None:
    standin, rows, rounds = _sms_run(db_url, 300, _timeouts(after_accept=True))
    timeouts = standin.faults.drawn["timeout"]
    settled: Counter[str] = Counter()
    for r in rounds:
        settled.update(r.reconciled)
    print(f"\nsms: {timeouts} timeouts in {standin.counts['create']} sends, {standin.counts['list']} lookups, "
          f"settled {dict(settled)}, rounds {len(rounds)}")

    assert timeouts >= 0.2 * standin.counts["create"]  # the faults really were injected
    # None of them was retried (on a loaded machine a reply slowed past the client's timeout is
    # one more unanswered send, taken by the stand-in all the same).
    unanswered = sum(r.unanswered for r in rounds)
    assert unanswered >= timeouts
    assert settled["found_sent"] == unanswered  # each was found at Twilio by the lookup
    assert standin.log.duplicates() == {}
    assert {r.status for r in rows} == {"sent"}
    assert set(standin.log.keys()) == {r.key for r in rows}
    assert all(r.attempts == 1 for r in rows)  # found, not sent again


def test_sms_timeouts_before_accept_are_looked_up_then_sent_once(db_url: str) -> None:
    standin, rows, rounds = _sms_run(db_url, 120, _timeouts(after_accept=False))
    settled: Counter[str] = Counter()
    for r in rounds:
        settled.update(r.reconciled)
    timeouts = standin.faults.drawn["timeout"]
    assert timeouts > 0
    # Nothing there, so each is sent again (or, the fifth time, fails); only a reply that load
    # slowed past the client's timeout is found.
    assert settled["resend"] > 0 and settled["resend"] + settled["exhausted"] == timeouts
    assert settled["found_sent"] == sum(r.unanswered for r in rounds) - timeouts
    assert standin.log.duplicates() == {}
    statuses = Counter(r.status for r in rows)
    assert set(statuses) <= {"sent", "failed"}
    for r in rows:
        if r.status == "failed":  # five unanswered tries in a row: retries used up, with the reason
            assert r.error_class == "retryable" and "not at the provider" in r.error_reason
    assert set(standin.log.keys()) == {r.key for r in rows if r.status == "sent"}


def test_wechat_timeouts_after_accept_are_repeated_with_the_key_or_failed_unknown(db_url: str) -> None:
    engine = make_engine(db_url)
    make_touches(engine, make_customers(engine, 200), channel="wechat")
    plan = FaultPlan(timeout_rate=0.25, hang_s=1.0, seed=11)
    with WeChatStandin(callbacks=False, faults=plan) as standin:
        assert isinstance(standin, WeChatStandin)
        adapter = WeChatTemplateAdapter(standin.appid, standin.secret, api_base=standin.base_url, timeout=0.3,
                                        concurrency=32, retry_pause=0.01)
        rounds = _rounds(engine, "wechat", adapter, WeChatRenderer(), timedelta(minutes=1))
    rows = _rows(engine)
    engine.dispose()
    statuses = Counter(r.status for r in rows)
    print(f"\nwechat: {dict(standin.faults.drawn)} in {standin.counts['send']} sends, "
          f"{standin.counts['deduplicated']} deduplicated, statuses {dict(statuses)}")

    assert standin.faults.drawn["timeout"] >= 0.2 * standin.counts["send"]
    assert sum(r.unanswered for r in rounds) == 0  # no lookup exists: nothing is left for reconciliation
    assert standin.counts["deduplicated"] > 0  # repeats went out, and WeChat dropped them
    assert standin.log.duplicates() == {}
    assert set(statuses) <= {"sent", "failed"}
    unknown = {r.key for r in rows if r.status == "failed"}
    for r in rows:
        if r.status == "failed":
            assert r.error_class == "unknown" and "client_msg_id" in r.error_reason
    # Every timeout came after the stand-in took the message: what it took is what we sent,
    # plus the touches we could not confirm (delivered, as it happens, exactly once).
    assert set(standin.log.keys()) == {r.key for r in rows if r.status == "sent"} | unknown


def _settled(rounds: list[DispatchCounts]) -> Counter[str]:
    settled: Counter[str] = Counter()
    for r in rounds:
        settled.update(r.reconciled)
    return settled


def test_sms_server_errors_are_looked_up_and_each_touch_reaches_twilio_once(db_url: str) -> None:
    """The finding: Twilio took the message and answered 500; a retry sent the SMS a second time."""
    n = 200
    # Both kinds of 500: after the message was created, and instead of creating it.
    plan = FaultPlan(accepted_5xx_rate=0.2, error_5xx_rate=0.1, seed=5)
    standin, rows, rounds = _sms_run(db_url, n, plan, timeout=10)
    settled = _settled(rounds)
    drawn = standin.faults.drawn
    print(f"\nsms 5xx: {dict(drawn)} in {standin.counts['create']} sends, {standin.counts['list']} lookups, "
          f"settled {dict(settled)}, rounds {len(rounds)}")

    assert drawn["5xx_after_accept"] > 0 and drawn["5xx"] > 0  # the faults really were injected
    # Counted at the provider: every touch's SMS exists exactly once.
    assert standin.log.duplicates() == {}
    assert len(standin.log) == n
    assert {r.status for r in rows} == {"sent"}
    assert set(standin.log.keys()) == {r.key for r in rows}
    # None was retried blindly: each went to the lookup, which found every message Twilio had
    # created and sent again each one it had not.
    unanswered = sum(r.unanswered for r in rounds)
    assert unanswered >= drawn["5xx_after_accept"] + drawn["5xx"]  # (+ any reply slowed past the timeout)
    assert settled["resend"] == drawn["5xx"]
    assert settled["found_sent"] == unanswered - drawn["5xx"]


def test_sms_lookup_that_fails_is_asked_again_later(db_url: str) -> None:
    engine = make_engine(db_url)
    make_touches(engine, make_customers(engine, 20), channel="sms")
    with TwilioStandin(callbacks=False, faults=FaultPlan(accepted_5xx_rate=1.0)) as standin:
        assert isinstance(standin, TwilioStandin)
        adapter = TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url,
                                   timeout=10, concurrency=8)
        dispatcher = Dispatcher(engine, {"sms": adapter}, PlainRenderer(), worker_id="w1", batch_size=100,
                                callback_url=lambda ch, touch: CALLBACK)

        async def run() -> list[DispatchCounts]:
            start = utcnow()
            try:
                first = await dispatcher.run_until_idle(now=start)  # every send answered 500 after it was created
                standin.faults.configure(accepted_5xx_rate=0.0)
                standin.list_failures = 5  # and Twilio's list fails for the first five lookups
                second = await dispatcher.run_until_idle(now=start + timedelta(minutes=10))
                again = await dispatcher.run_until_idle(now=start + timedelta(minutes=10, seconds=1))
                later = await dispatcher.run_until_idle(now=start + timedelta(minutes=20))
                return [first, second, again, later]
            finally:
                await dispatcher.aclose()

        first, second, again, later = asyncio.run(run())
    rows = _rows(engine)
    engine.dispose()
    assert first.unanswered == 20
    # The failed lookups settle nothing and do not stop the run; they are not asked again at once.
    assert (second.reconciled["found_sent"], second.reconciled["deferred"]) == (15, 5)
    assert again.reconciled == Counter()
    assert later.reconciled["found_sent"] == 5
    assert {r.status for r in rows} == {"sent"} and all(r.attempts == 1 for r in rows)
    assert len(standin.log) == 20 and standin.log.duplicates() == {}
    assert standin.counts["create"] == 20  # nothing was sent twice


def test_wechat_server_errors_are_repeated_with_the_key_never_retried_later_or_fallen_back(db_url: str) -> None:
    """A WeChat 5xx may come after the message went out and WeChat has no lookup: the adapter repeats
    it at once with the same client_msg_id (deduplicated), then gives up as unknown. Not a dispatch
    retry (it could come after the dedup window) and not a fallback to SMS (a second message)."""
    engine = make_engine(db_url)
    ids = make_customers(engine, 30)
    make_touches(engine, ids, channel="wechat", fallback=["sms"])
    busy = {f"openid-{i}" for i in range(10)}  # these get WeChat's own "system busy" (errcode -1) first
    with WeChatStandin(callbacks=False, faults=FaultPlan(error_5xx_rate=1.0)) as wechat, \
            TwilioStandin(callbacks=False) as twilio:
        assert isinstance(wechat, WeChatStandin) and isinstance(twilio, TwilioStandin)
        wechat.forced_errcodes.update(dict.fromkeys(busy, -1))
        dispatcher = wechat_then_sms(engine, wechat, twilio, concurrency=8, retry_pause=0.01)

        async def run() -> list[DispatchCounts]:
            now = utcnow()
            rounds = []
            try:
                rounds.append(await dispatcher.run_until_idle(now=now))
                wechat.forced_errcodes.clear()  # WeChat is less busy now, and its gateway recovered
                wechat.faults.configure(error_5xx_rate=0.0)
                for _ in range(10):
                    now += timedelta(minutes=10)
                    rounds.append(await dispatcher.run_until_idle(now=now))
                    if not _open(engine):
                        break
            finally:
                await dispatcher.aclose()
            return rounds

        rounds = asyncio.run(run())
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, status, channel, error_class, error_reason, attempts FROM touch")).all()
        openids: dict[str, str] = {str(key): str(openid) for key, openid in conn.execute(text(
            "SELECT touch.key, customer.wechat_openid FROM touch JOIN customer ON customer.id = touch.customer_id"))}
    engine.dispose()
    print(f"\nwechat 5xx: {dict(wechat.faults.drawn)} in {wechat.counts['send']} sends, rounds "
          f"{[r.summary() for r in rounds]}")

    assert rounds[0].deferred == 10  # errcode -1: a definite "not sent", backed off and retried
    assert rounds[0].failed["unknown"] == 20
    for r in rows:
        assert r.channel == "wechat"  # nothing fell back to SMS
        if openids[r.key] in busy:
            assert (r.status, r.attempts) == ("sent", 2)
        else:
            assert (r.status, r.error_class) == ("failed", "unknown")
            assert "HTTP 503" in r.error_reason and "client_msg_id" in r.error_reason
    # Three keyed tries for each 503 touch, all at once (none later), and not one SMS.
    assert wechat.faults.drawn["5xx"] == 20 * 3
    assert len(twilio.log) == 0 and twilio.counts["create"] == 0
    assert sorted(wechat.log.keys()) == sorted(k for k, o in openids.items() if o in busy)
    assert wechat.log.duplicates() == {}
