"""A touch claimed late into its channel's quiet hours (a backlog, an outage, the service stopped for an
hour) is not sent: it goes back to planned until their end, in the customer's local time, with its attempt
given back, and goes out once they are over; an urgent touch may go out in them. A service touch an opt-out
moved to another channel is held to that channel's quiet hours the same way (real dispatch, a provider on
loopback; customers in Shanghai, UTC+8)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import text, update
from sqlmodel import Session

from channels.optout import record_opt_out
from engine.language.settings_model import DeliveryConfig, QuietHours
from engine.sending.dispatch import Dispatcher
from engine.sending.dispatch_counts import DispatchCounts
from store.db import make_engine
from store.models import Touch
from store.touch_reasons import parse
from tests.dispatch_support import HttpAdapter, PlainRenderer, RecordingProvider, make_customers, make_touches

# The shipped quiet hours, 21:00-08:00, and WeChat's own, 20:00-09:00.
QUIET = DeliveryConfig(channel_quiet_hours={"wechat": QuietHours(start="20:00", end="09:00")})


def _run(engine, provider: RecordingProvider, now: datetime) -> DispatchCounts:  # type: ignore[no-untyped-def]
    adapters = {ch: HttpAdapter(ch, provider.port) for ch in ("sms", "wechat", "email")}
    d = Dispatcher(engine, adapters, PlainRenderer(), worker_id="w1", quiet=QUIET)  # type: ignore[arg-type]

    async def go() -> DispatchCounts:
        try:
            return await d.run_until_idle(now=now)
        finally:
            await d.aclose()

    return asyncio.run(go())


def _touch(engine, customer_id: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, channel, attempts, next_attempt_at, claimed_by, error_class, "
                                "error_reason, sent_at FROM touch WHERE customer_id = :c"), {"c": customer_id}).one()
    found = dict(row._mapping)
    for name in ("next_attempt_at", "sent_at"):
        value = found[name]
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        found[name] = value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
    return found


def test_a_touch_claimed_late_into_quiet_hours_waits_for_their_end_and_is_sent_once(db_url: str) -> None:
    engine = make_engine(db_url)
    plain, urgent = make_customers(engine, 2)
    due = datetime(2027, 3, 1, 12, 55, tzinfo=UTC)  # 20:55 in Shanghai, out of quiet hours when planned
    make_touches(engine, [plain, urgent], due=due)
    with engine.begin() as conn:
        conn.execute(update(Touch).where(Touch.customer_id == urgent).values(urgent=True))  # type: ignore[arg-type]
    late = datetime(2027, 3, 1, 13, 30, tzinfo=UTC)  # claimed at 21:30, in the quiet hours
    morning = datetime(2027, 3, 2, 0, 0, tzinfo=UTC)  # 08:00, their end
    with RecordingProvider().running() as provider:
        counts = _run(engine, provider, late)
        # Both claimed: the urgent one goes out, the other is held, not tried.
        assert (counts.claimed, counts.sent, counts.held, counts.deferred) == (2, 1, 1, 0)
        assert counts.as_dict()["held"] == 1 and " held=1 " in counts.summary()
        assert [to for _, to in provider.accepted] == ["+8613800000001"]
        held = _touch(engine, plain)
        assert (held["status"], held["channel"], held["attempts"], held["next_attempt_at"], held["claimed_by"],
                held["error_class"], held["sent_at"]) == ("planned", "sms", 0, morning, None, None, None)
        reason = parse(str(held["error_reason"]))
        assert reason is not None and reason.code == "quiet_hours"
        assert reason.params == {"start": "21:00", "end": "08:00", "zone": "Asia/Shanghai",
                                 "moved_from": "2027-03-01 21:30"}

        # A minute before the end nothing is claimed; at the end it goes out, once, on its first attempt.
        assert _run(engine, provider, morning - timedelta(minutes=1)).claimed == 0
        counts = _run(engine, provider, morning)
        assert (counts.claimed, counts.sent, counts.held) == (1, 1, 0)
        assert provider.keys() == {f"{plain}:j1:s1:2026-01": 1, f"{urgent}:j1:s1:2026-01": 1}
    sent = _touch(engine, plain)
    assert (sent["status"], sent["attempts"], sent["sent_at"], sent["error_reason"]) == ("sent", 1, morning, None)
    engine.dispose()


def test_a_late_claim_is_held_to_the_quiet_hours_of_its_own_channel(db_url: str) -> None:
    engine = make_engine(db_url)
    by_sms, by_wechat = make_customers(engine, 2)
    due = datetime(2027, 3, 1, 11, 55, tzinfo=UTC)  # 19:55 in Shanghai
    make_touches(engine, [by_sms], due=due)
    make_touches(engine, [by_wechat], channel="wechat", due=due)
    with RecordingProvider().running() as provider:
        # 20:10: SMS may still go, WeChat's quiet hours have begun (until 09:00).
        counts = _run(engine, provider, datetime(2027, 3, 1, 12, 10, tzinfo=UTC))
        assert (counts.sent, counts.held) == (1, 1)
        assert [to for _, to in provider.accepted] == ["+8613800000000"]
        held = _touch(engine, by_wechat)
        assert (held["status"], held["attempts"], held["next_attempt_at"]) == (
            "planned", 0, datetime(2027, 3, 2, 1, 0, tzinfo=UTC))
        # 08:30: past SMS's quiet hours, not WeChat's.
        assert _run(engine, provider, datetime(2027, 3, 2, 0, 30, tzinfo=UTC)).claimed == 0
        counts = _run(engine, provider, datetime(2027, 3, 2, 1, 0, tzinfo=UTC))
        assert counts.sent == 1 and [to for _, to in provider.accepted] == ["+8613800000000", "openid-1"]
    engine.dispose()


def test_a_touch_an_opt_out_moved_to_another_channel_is_held_to_that_channels_quiet_hours(db_url: str) -> None:
    """The opt-out moves a planned service touch to WeChat, due when it was due (08:30); dispatch holds it
    to 09:00, the end of WeChat's quiet hours, as it holds any touch it claims."""
    engine = make_engine(db_url)
    [cid] = make_customers(engine, 1)
    due = datetime(2027, 3, 2, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
    make_touches(engine, [cid], due=due, fallback=["wechat"])
    with Session(engine) as session:
        assert record_opt_out(session, cid, "sms", source="reply:sms", dedup_key="reply-1", at=due) is not None
        session.commit()
    assert _touch(engine, cid)["channel"] == "wechat"
    with RecordingProvider().running() as provider:
        counts = _run(engine, provider, due + timedelta(minutes=1))
        assert (counts.claimed, counts.sent, counts.held) == (1, 0, 1) and provider.accepted == []
        held = _touch(engine, cid)
        assert (held["status"], held["channel"], held["attempts"], held["next_attempt_at"]) == (
            "planned", "wechat", 0, datetime(2027, 3, 2, 1, 0, tzinfo=UTC))
        counts = _run(engine, provider, datetime(2027, 3, 2, 1, 0, tzinfo=UTC))
        assert counts.sent == 1 and [to for _, to in provider.accepted] == ["openid-0"]
    engine.dispose()
