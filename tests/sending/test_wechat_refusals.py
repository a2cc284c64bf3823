"""WeChat's refusals through the dispatcher, the real adapter against the stand-in over HTTP.

43004 (not following the account) and 43101 (the subscription refused or used up) can never succeed
for this message: the touch moves to its next channel (SMS) at once, with WeChat's reason in words
kept on the touch's outcomes. -1 (system busy) is about this moment, not the message: retried on WeChat
after its back-off, not moved to SMS. 45009 (the account's daily quota) stops the whole channel instead, and
a touch whose step lists SMS goes out there: tests/sending/test_wechat_account_refusals.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import text

from engine.sending.dispatch import DispatchCounts
from standins.twilio_api import TwilioStandin
from standins.wechat_api import WeChatStandin
from store.clock import utcnow
from store.db import make_engine
from tests.dispatch_support import daytime_zone, make_customers, make_touches
from tests.sending.test_unanswered_sends import wechat_then_sms

REFUSALS = {"openid-0": 43004, "openid-1": 43101, "openid-2": -1}


def test_permanent_refusals_fall_back_to_sms_and_busy_ones_wait_for_wechat(db_url: str) -> None:
    engine = make_engine(db_url)
    ids = make_customers(engine, 5, timezone=daytime_zone())
    make_touches(engine, ids, channel="wechat", fallback=["sms"])
    with WeChatStandin(callbacks=False) as wechat, TwilioStandin(callbacks=False) as twilio:
        assert isinstance(wechat, WeChatStandin) and isinstance(twilio, TwilioStandin)
        wechat.forced_errcodes.update(REFUSALS)
        dispatcher = wechat_then_sms(engine, wechat, twilio)

        async def run() -> list[DispatchCounts]:
            now = utcnow()
            rounds = [await dispatcher.run_until_idle(now=now)]
            # WeChat has room again: the busy send goes out there on its next try.
            wechat.forced_errcodes = {k: v for k, v in REFUSALS.items() if v in (43004, 43101)}
            try:
                for _ in range(3):  # past the busy send's back-off
                    now += timedelta(hours=1)
                    rounds.append(await dispatcher.run_until_idle(now=now))
            finally:
                await dispatcher.aclose()
            return rounds

        asyncio.run(run())
    with engine.connect() as conn:
        rows = {str(openid): (status, channel) for openid, status, channel in conn.execute(text(
            "SELECT customer.wechat_openid, touch.status, touch.channel FROM touch "
            "JOIN customer ON customer.id = touch.customer_id"))}
        reasons = " | ".join(str(r) for r in conn.execute(text("SELECT detail FROM outcome")).scalars())
    engine.dispose()
    assert rows == {"openid-0": ("sent", "sms"), "openid-1": ("sent", "sms"), "openid-2": ("sent", "wechat"),
                    "openid-3": ("sent", "wechat"), "openid-4": ("sent", "wechat")}
    assert sorted(e.recipient for e in twilio.log.entries) == ["+8613800000000", "+8613800000001"]
    assert "not subscribed" in reasons and "refused to receive" in reasons
