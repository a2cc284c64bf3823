"""A retry or a fallback comes later than the moment the planner put out of quiet hours: dispatch holds
it to the end of the quiet hours of the channel it goes on, in the customer's local time, as the
planner holds a touch; an urgent touch may go out in them (real dispatch, a provider on loopback)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text, update

from engine.language.settings_model import DeliveryConfig, QuietHours
from engine.sending.dispatch import Dispatcher
from store.db import make_engine
from store.models import Touch
from tests.dispatch_support import HttpAdapter, PlainRenderer, RecordingProvider, make_customers, make_touches

# The shipped quiet hours, 21:00-08:00, and WeChat's own, 20:00-09:00 (customers in Shanghai, UTC+8).
QUIET = DeliveryConfig(channel_quiet_hours={"wechat": QuietHours(start="20:00", end="09:00")})


def _run(engine, provider: RecordingProvider, now: datetime):  # type: ignore[no-untyped-def]
    adapters = {ch: HttpAdapter(ch, provider.port) for ch in ("sms", "wechat", "email")}
    d = Dispatcher(engine, adapters, PlainRenderer(), worker_id="w1", quiet=QUIET)  # type: ignore[arg-type]

    async def go():  # type: ignore[no-untyped-def]
        try:
            return await d.run_until_idle(now=now)
        finally:
            await d.aclose()

    return asyncio.run(go())


def _touches(engine) -> dict[int, tuple[str, str, datetime | None]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT customer_id, status, channel, next_attempt_at FROM touch")).all()
    return {r[0]: (r[1], r[2], r[3] if r[3] is None or isinstance(r[3], datetime) else datetime.fromisoformat(r[3]))
            for r in rows}


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def test_a_retry_at_the_edge_of_quiet_hours_waits_for_the_morning(db_url: str) -> None:
    engine = make_engine(db_url)
    plain, urgent = make_customers(engine, 2)
    due = datetime(2027, 3, 1, 12, 59, 50, tzinfo=UTC)  # 20:59:50 in Shanghai
    make_touches(engine, [plain, urgent], due=due)
    with engine.begin() as conn:
        conn.execute(update(Touch).where(Touch.customer_id == urgent).values(urgent=True))  # type: ignore[arg-type]
    with RecordingProvider().running() as provider:
        provider.fail = {"+8613800000000": (503, "503"), "+8613800000001": (503, "503")}
        counts = _run(engine, provider, due)
    assert counts.deferred == 2
    rows = _touches(engine)
    # The back-off (15-30 s) lands in quiet hours: held to 08:00 the next morning.
    assert _utc(rows[plain][2]) == datetime(2027, 3, 2, 0, 0, tzinfo=UTC)
    # An urgent touch may go out in quiet hours: its back-off stands.
    retry_at = _utc(rows[urgent][2])
    assert retry_at is not None and due < retry_at <= datetime(2027, 3, 1, 13, 1, tzinfo=UTC)
    engine.dispose()


def test_a_fallback_to_a_channel_with_its_own_quiet_hours_waits_for_their_end(db_url: str) -> None:
    engine = make_engine(db_url)
    [cid] = make_customers(engine, 1)
    due = datetime(2027, 3, 1, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai: SMS may go, WeChat not before 09:00
    make_touches(engine, [cid], due=due, fallback=["wechat"])
    with RecordingProvider().running() as provider:
        provider.fail = {"+8613800000000": (400, "21211")}  # an invalid number: SMS fails for good
        counts = _run(engine, provider, due)
        assert counts.fell_back == 1 and counts.sent == 0 and provider.accepted == []
        status, channel, next_at = _touches(engine)[cid]
        assert (status, channel, _utc(next_at)) == ("planned", "wechat", datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
        # At 09:00 it goes out on WeChat.
        counts = _run(engine, provider, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
        assert counts.sent == 1 and [to for _, to in provider.accepted] == ["openid-0"]
    engine.dispose()
