"""WeChat's 43004 (the customer does not follow the account) makes WeChat unusable for them, as the
unfollow push does: WeChat consent is withdrawn (source ``wechat:43004``), their touches still planned
on WeChat move to SMS, and the next one goes straight to SMS without asking WeChat again. The real
adapter against the stand-in over HTTP; a follower next to them keeps WeChat."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from channels.base import ChannelAdapter
from channels.sms_twilio import TwilioSmsAdapter
from channels.wechat import WeChatTemplateAdapter
from engine.sending.dispatch import Dispatcher
from standins.twilio_api import TwilioStandin
from standins.wechat_api import WeChatStandin
from store.clock import utcnow
from store.db import make_engine
from tests.dispatch_support import daytime_zone, make_customers, make_touches
from tests.sending.test_unanswered_sends import CALLBACK, FROM, MixedRenderer


def test_43004_withdraws_wechat_so_later_touches_go_to_sms_without_asking_wechat(any_db_url: str) -> None:
    from store.migrate import upgrade

    upgrade(any_db_url)
    engine = make_engine(any_db_url)
    ids = make_customers(engine, 2, timezone=daytime_zone())
    make_touches(engine, ids, channel="wechat", fallback=["sms"])
    # The next step, planned already: it is due after the first was answered.
    make_touches(engine, ids, channel="wechat", fallback=["sms"], step="s2", due=utcnow().replace(year=2100))
    with WeChatStandin(callbacks=False) as wechat, TwilioStandin(callbacks=False) as twilio:
        assert isinstance(wechat, WeChatStandin) and isinstance(twilio, TwilioStandin)
        wechat.unsubscribed.add("openid-0")
        adapters: dict[str, ChannelAdapter] = {
            "wechat": WeChatTemplateAdapter(wechat.appid, wechat.secret, api_base=wechat.base_url, timeout=10),
            "sms": TwilioSmsAdapter(twilio.account_sid, twilio.auth_token, FROM, api_base=twilio.base_url,
                                    timeout=10),
        }
        dispatcher = Dispatcher(engine, adapters, MixedRenderer(), worker_id="w1", batch_size=100,
                                callback_url=lambda ch, touch: CALLBACK)

        async def run() -> None:
            try:
                await dispatcher.run_until_idle(now=utcnow())
                with engine.begin() as conn:
                    conn.execute(text("UPDATE touch SET due_at = :now, planned_for = :now WHERE step_id = 's2'"),
                                 {"now": utcnow()})
                await dispatcher.run_until_idle(now=utcnow())
            finally:
                await dispatcher.aclose()

        asyncio.run(run())
        accepted = [entry.recipient for entry in wechat.log.entries]
    with engine.connect() as conn:
        touches = {(str(openid), str(step)): (str(status), str(channel)) for openid, step, status, channel in
                   conn.execute(text("SELECT customer.wechat_openid, touch.step_id, touch.status, touch.channel "
                                     "FROM touch JOIN customer ON customer.id = touch.customer_id"))}
        refused = [str(d) for d in conn.execute(text("SELECT detail FROM outcome WHERE kind = 'failed'")).scalars()
                   if "not subscribed" in str(d)]
        consent = {str(openid): (bool(given), source) for openid, given, source in conn.execute(text(
            "SELECT wechat_openid, consent_wechat, consent_wechat_source FROM customer"))}
    engine.dispose()
    assert touches == {("openid-0", "s1"): ("sent", "sms"), ("openid-0", "s2"): ("sent", "sms"),
                       ("openid-1", "s1"): ("sent", "wechat"), ("openid-1", "s2"): ("sent", "wechat")}
    assert consent["openid-0"] == (False, "wechat:43004")
    assert consent["openid-1"][0] is True
    # WeChat refused her once: her second touch was not offered to it.
    assert len(refused) == 1 and sorted(accepted) == ["openid-1", "openid-1"]
    assert sorted(e.recipient for e in twilio.log.entries) == ["+8613800000000", "+8613800000000"]
