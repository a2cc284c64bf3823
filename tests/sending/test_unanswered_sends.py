"""Exactly once when the provider's answer is lost: a request that timed out after the provider took
it is never retried blindly. The real dispatcher sends through the real adapters to the stand-ins,
which accept and log a message and then hang (``timeout_after_accept``); dispatch runs round after
round with the clock moved on, as retries and lookups fall due.

- SMS: the unanswered touch stays ``sending`` until reconciliation asks Twilio's Messages list
  (no status callbacks here, so the list is the only way to know), then is recorded as sent
  (found) or sent again (not found).
- WeChat: no lookup exists; the adapter repeats the request with the same ``client_msg_id``,
  which the stand-in deduplicates as WeChat does, and gives up as "unknown" with the reason.
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


def _rounds(engine: Engine, channel: str, adapter: ChannelAdapter, renderer: Renderer,
            step: timedelta) -> list[DispatchCounts]:
    """Dispatch until nothing is planned or sending, moving the clock on by ``step`` each round."""
    dispatcher = Dispatcher(engine, {channel: adapter}, renderer, worker_id="w1", batch_size=100, lanes=2,
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


def _sms_run(db_url: str, n: int, *, after_accept: bool) -> tuple[TwilioStandin, list[Any], list[DispatchCounts]]:
    engine = make_engine(db_url)
    make_touches(engine, make_customers(engine, n), channel="sms")
    plan = FaultPlan(timeout_rate=0.25, hang_s=1.0, timeout_after_accept=after_accept, seed=7)
    with TwilioStandin(callbacks=False, faults=plan) as standin:
        assert isinstance(standin, TwilioStandin)
        adapter = TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url,
                                   timeout=0.3, concurrency=32)
        # Lookups are due two minutes after the lost reply; ten-minute rounds pass that and every back-off.
        rounds = _rounds(engine, "sms", adapter, PlainRenderer(), timedelta(minutes=10))
    rows = _rows(engine)
    engine.dispose()
    return standin, rows, rounds


def test_sms_timeouts_after_accept_are_looked_up_not_resent(db_url: str) -> None:
    standin, rows, rounds = _sms_run(db_url, 300, after_accept=True)
    timeouts = standin.faults.drawn["timeout"]
    settled: Counter[str] = Counter()
    for r in rounds:
        settled.update(r.reconciled)
    print(f"\nsms: {timeouts} timeouts in {standin.counts['create']} sends, {standin.counts['list']} lookups, "
          f"settled {dict(settled)}, rounds {len(rounds)}")

    assert timeouts >= 0.2 * standin.counts["create"]  # the faults really were injected
    assert sum(r.unanswered for r in rounds) == timeouts  # none of them was retried
    assert settled["found_sent"] == timeouts  # each was found at Twilio by the lookup
    assert standin.log.duplicates() == {}
    assert {r.status for r in rows} == {"sent"}
    assert set(standin.log.keys()) == {r.key for r in rows}
    assert all(r.attempts == 1 for r in rows)  # found, not sent again


def test_sms_timeouts_before_accept_are_looked_up_then_sent_once(db_url: str) -> None:
    standin, rows, rounds = _sms_run(db_url, 120, after_accept=False)
    settled: Counter[str] = Counter()
    for r in rounds:
        settled.update(r.reconciled)
    assert standin.faults.drawn["timeout"] > 0
    assert settled["resend"] > 0 and settled["found_sent"] == 0  # nothing there, so sent again
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
