"""WeChat's refusals about the official account, not the customer, stop the channel instead of spending
every touch: 45009 (the day's API quota used up) until WeChat resets it at midnight, Beijing time; 40164
(this server's IP not on the account's whitelist, answered at the token endpoint) and 48001 (the API not
granted to the account) for 15 minutes at a time, until ops fix the account. A touch whose step lists no
other channel waits on WeChat, its attempt not counted, and the reason says in Chinese and English what
ops can do; one whose step lists SMS after WeChat goes out on SMS at once instead of waiting. The real
adapters against the WeChat and Twilio stand-ins over HTTP, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from channels.base import ChannelAdapter
from channels.sms_twilio import TwilioSmsAdapter
from channels.wechat import WeChatTemplateAdapter
from console.i18n import Translator
from engine.sending.channel_stop import channels_to_claim, record_stops, stop_for, stopped_channels
from engine.sending.dispatch import Dispatcher
from standins.twilio_api import TwilioStandin
from standins.wechat_api import WeChatStandin
from store.clock import as_utc, utcnow
from store.db import make_engine
from store.migrate import upgrade
from store.touch_reasons import parse
from tests.dispatch_support import daytime_zone, make_customers, make_touches
from tests.sending.test_unanswered_sends import CALLBACK, FROM, MixedRenderer


def beijing_midnight(now: datetime) -> datetime:
    beijing = ZoneInfo("Asia/Shanghai")
    return datetime.combine(now.astimezone(beijing).date() + timedelta(days=1), time(), beijing).astimezone(UTC)


def quota(wechat: WeChatStandin, on: bool) -> None:
    wechat.forced_errcodes = {f"openid-{i}": 45009 for i in range(3)} if on else {}


def unauthorized(wechat: WeChatStandin, on: bool) -> None:
    wechat.forced_errcodes = {f"openid-{i}": 48001 for i in range(3)} if on else {}


def not_whitelisted(wechat: WeChatStandin, on: bool) -> None:
    wechat.ip_whitelist = frozenset({"192.0.2.1"}) if on else None


CASES = [(quota, "stopped_quota", beijing_midnight, "零点"),
         (unauthorized, "stopped_unauthorized", lambda now: now + timedelta(minutes=15), "接口的权限"),
         (not_whitelisted, "stopped_ip", lambda now: now + timedelta(minutes=15), "白名单")]


@pytest.mark.parametrize(("refuse", "code", "until", "words"), CASES, ids=["45009", "48001", "40164"])
def test_the_accounts_refusal_stops_wechat_and_the_touches_wait_unspent(
        any_db_url: str, refuse: Callable[[WeChatStandin, bool], None], code: str,
        until: Callable[[datetime], datetime], words: str) -> None:
    upgrade(any_db_url)
    engine = make_engine(any_db_url)
    make_touches(engine, make_customers(engine, 3, timezone=daytime_zone()), channel="wechat", fallback=[])
    now = utcnow().replace(microsecond=0)
    with WeChatStandin(callbacks=False) as wechat, TwilioStandin(callbacks=False) as twilio:
        assert isinstance(wechat, WeChatStandin) and isinstance(twilio, TwilioStandin)
        refuse(wechat, True)
        dispatcher = wechat_and_sms(engine, wechat, twilio)
        calls: list[int] = []

        async def run() -> None:
            try:
                await dispatcher.run_until_idle(now=now)
                calls.append(wechat.counts["send"] + wechat.counts["token"])
                # Fixed already, but nobody has told us: nothing is asked of WeChat before the stop ends.
                refuse(wechat, False)
                await dispatcher.run_until_idle(now=now + timedelta(minutes=10))
                calls.append(wechat.counts["send"] + wechat.counts["token"])
                rows.extend(touches(engine))
                await dispatcher.run_until_idle(now=until(now) + timedelta(minutes=1))
            finally:
                await dispatcher.aclose()

        rows: list[tuple[str, str, int, datetime | None, str | None]] = []
        asyncio.run(run())
        sent_on_wechat = len(wechat.log.entries)
    assert calls[0] == calls[1]
    assert [(status, channel, attempts) for status, channel, attempts, _, _ in rows] == [("planned", "wechat", 0)] * 3
    assert {as_utc(next_at) for _, _, _, next_at, _ in rows if next_at} == {until(now)}
    reason = rows[0][4]
    assert reason is not None and (parsed := parse(reason)) is not None and parsed.code == code, reason
    zh, en = Translator("zh-CN").touch_reason(reason), Translator("en").touch_reason(reason)
    assert zh.startswith("微信") and words in zh and not re.search(r"\d{4}-\d{2}|[a-z]{2,}", zh), zh
    assert "运维" in zh or code == "stopped_quota", zh  # what ops do, when it is theirs to fix
    assert en.startswith("WeChat") and "errcode" in en, en
    after = touches(engine)
    engine.dispose()
    assert [(status, channel) for status, channel, _, _, _ in after] == [("sent", "wechat")] * 3
    assert sent_on_wechat == 3 and twilio.log.entries == []


def wechat_and_sms(engine: Engine, wechat: WeChatStandin, twilio: TwilioStandin) -> Dispatcher:
    adapters: dict[str, ChannelAdapter] = {
        "wechat": WeChatTemplateAdapter(wechat.appid, wechat.secret, api_base=wechat.base_url, timeout=10),
        "sms": TwilioSmsAdapter(twilio.account_sid, twilio.auth_token, FROM, api_base=twilio.base_url, timeout=10),
    }
    return Dispatcher(engine, adapters, MixedRenderer(), worker_id="w1", batch_size=100, max_attempts=2,
                      callback_url=lambda ch, touch: CALLBACK)


@pytest.mark.parametrize("refuse", [case[0] for case in CASES], ids=["45009", "48001", "40164"])
def test_a_touch_whose_step_lists_another_channel_goes_out_there_instead_of_waiting(
        any_db_url: str, refuse: Callable[[WeChatStandin, bool], None]) -> None:
    upgrade(any_db_url)
    engine = make_engine(any_db_url)
    customers = make_customers(engine, 4, timezone=daytime_zone())
    now = utcnow().replace(microsecond=0)
    make_touches(engine, customers[:3], channel="wechat", fallback=["sms"])
    # Due while the channel is stopped, never offered to WeChat: it goes on SMS when due, not at the stop's end.
    make_touches(engine, customers[3:], channel="wechat", fallback=["sms"], due=now + timedelta(minutes=5))
    with WeChatStandin(callbacks=False) as wechat, TwilioStandin(callbacks=False) as twilio:
        assert isinstance(wechat, WeChatStandin) and isinstance(twilio, TwilioStandin)
        refuse(wechat, True)
        dispatcher = wechat_and_sms(engine, wechat, twilio)
        first: list[tuple[str, str, int, datetime | None, str | None]] = []
        moved: list[tuple[str, str, int, datetime | None, str | None]] = []

        async def run() -> None:
            try:
                await dispatcher.run_until_idle(now=now)
                first.extend(touches(engine))
                # What the next claim does first, seen before the send clears the reason.
                assert channels_to_claim(engine, ["sms", "wechat"], now + timedelta(minutes=6)) == ["sms"]
                moved.extend(touches(engine))
                await dispatcher.run_until_idle(now=now + timedelta(minutes=6))
            finally:
                await dispatcher.aclose()

        asyncio.run(run())
        sent_on_wechat, sent_on_sms = len(wechat.log.entries), len(twilio.log.entries)
    after = touches(engine)
    engine.dispose()
    assert [(status, channel) for status, channel, _, _, _ in first] == [("sent", "sms")] * 3 + [("planned", "wechat")]
    assert [(status, channel, attempts) for status, channel, attempts, _, _ in moved[3:]] == [("planned", "sms", 0)]
    assert [(status, channel) for status, channel, _, _, _ in after] == [("sent", "sms")] * 4
    assert sent_on_wechat == 0 and sent_on_sms == 4
    reason = moved[3][4]
    parsed = parse(reason)
    assert parsed is not None and (parsed.code, parsed.params["to"]) == ("stopped_moved", "sms"), reason
    zh, en = Translator("zh-CN").touch_reason(reason), Translator("en").touch_reason(reason)
    assert "短信" in zh and "微信" in zh and not re.search(r"[a-z]{2,}", zh), zh
    assert "SMS" in en and "WeChat" in en and "stopped" in en, en


def touches(engine: object) -> list[tuple[str, str, int, datetime | None, str | None]]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return [(str(s), str(c), int(a), n if n is None or isinstance(n, datetime) else datetime.fromisoformat(n), r)
                for s, c, a, n, r in conn.execute(text(
                    "SELECT status, channel, attempts, next_attempt_at, error_reason FROM touch ORDER BY id"))]


def test_a_stop_written_again_replaces_the_one_before(any_db_url: str) -> None:
    """Still refused when the stop ends (ops have not fixed it yet), or refused in two workers at once: the
    stop is written again over the one before, and the worker's recording does not fail on the key."""
    upgrade(any_db_url)
    engine = make_engine(any_db_url)
    now = utcnow()
    first, later = stop_for("wechat", "48001", now), stop_for("wechat", "token:40164", now + timedelta(minutes=16))
    assert first is not None and later is not None
    with engine.begin() as conn:
        record_stops(conn, [first], now)
    assert stopped_channels(engine, now) == {"wechat"}
    with engine.begin() as conn:
        record_stops(conn, [later], now + timedelta(minutes=16))
    assert stopped_channels(engine, now + timedelta(minutes=20)) == {"wechat"}
    assert stopped_channels(engine, now + timedelta(minutes=32)) == set()
    engine.dispose()
