"""Consent per channel and purpose (PIPL Art. 24): a TD to a marketing message withdraws marketing
on that channel only, and the reply says so; a TD to a service message withdraws the channel.
Dispatch and the planner's channel choice honour the two consents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import select

from channels.inbound import opt_out_confirmation
from channels.optout import record_opt_out
from channels.routing import can_use
from engine.language.settings_model import DeliveryConfig
from engine.planning.delivery_rules import Reach, Wanted, decide
from engine.sending.dispatch import Dispatcher
from store.db import make_engine, session_scope
from store.models import Customer, Event, Touch, TouchStatus
from tests.db_support import stored
from tests.dispatch_support import HttpAdapter, PlainRenderer, RecordingProvider, dispatch_until_idle
from tests.loop import test_receipts as receipts
from tests.loop.test_optout import sms_in
from tests.loop.test_receipts import make_customer, make_touch, touch_row

client = receipts.client
heard = receipts.heard
secrets = receipts.secrets


def customer(url: str, customer_id: int) -> Customer:
    return stored(url, Customer, customer_id)


def service_touch(url: str, customer_id: int, key: str, status: str = TouchStatus.PLANNED) -> int:
    touch_id = make_touch(url, customer_id, key, status=status, template="renewal_reminder")
    with session_scope(url) as s:
        s.execute(update(Touch).where(Touch.id == touch_id).values(category="service"))  # type: ignore[arg-type]
    return touch_id


async def test_td_to_a_marketing_sms_stops_marketing_sms_only_and_says_so(
        db_url: str, client: httpx.AsyncClient) -> None:
    who = make_customer(db_url)
    make_touch(db_url, who, "promo-sent")  # the marketing SMS the customer answers
    promo_planned = make_touch(db_url, who, "promo-next", status=TouchStatus.PLANNED)
    renewal_planned = service_touch(db_url, who, "renewal-next")
    promo_wechat = make_touch(db_url, who, "promo-wx", channel="wechat", status=TouchStatus.PLANNED)

    response = await sms_in(client, "TD", "SMpurpose1")
    assert response.status_code == 200
    assert "<Message>您已退订短信营销信息。保单续保、理赔等服务通知仍将通过短信发送。</Message>" in response.text

    row = customer(db_url, who)
    assert (row.consent_sms, row.consent_sms_marketing, row.consent_sms_marketing_source) == (True, False, "reply:sms")
    assert row.consent_sms_marketing_at is not None and row.consent_wechat_marketing is None
    assert (can_use(row, "sms", "service"), can_use(row, "sms", "marketing"), can_use(row, "wechat", "marketing")) == (
        True, False, True)
    cancelled = touch_row(db_url, promo_planned)
    assert (cancelled.status, cancelled.error_reason) == (
        TouchStatus.CANCELLED, "opted out of marketing on sms: a marketing touch is not moved to another channel")
    assert touch_row(db_url, renewal_planned).status == TouchStatus.PLANNED
    assert touch_row(db_url, promo_wechat).status == TouchStatus.PLANNED
    with session_scope(db_url) as s:
        [event] = s.exec(select(Event).where(Event.type == "message.opted_out")).all()
        assert event.data == {"channel": "sms", "source": "reply:sms", "purpose": "marketing"}


async def test_td_to_a_service_sms_withdraws_the_channel_as_before(db_url: str, client: httpx.AsyncClient) -> None:
    who = make_customer(db_url)
    service_touch(db_url, who, "renewal-sent", status=TouchStatus.SENT)
    response = await sms_in(client, "退订", "SMpurpose2")
    assert "<Message>您已退订全部短信消息，我们将不再通过短信联系您。</Message>" in response.text
    row = customer(db_url, who)
    assert (row.consent_sms, row.consent_sms_marketing) == (False, False)


@pytest.mark.parametrize(("purpose", "locale", "expected"), [
    ("marketing", "en", "You will no longer receive marketing SMS messages from us. Service messages about your "
                        "policies and claims (renewal, claims) will still be sent on SMS."),
    ("all", "en", "You will no longer receive any SMS messages from us."),
    ("marketing", "zh-CN", "您已退订短信营销信息。保单续保、理赔等服务通知仍将通过短信发送。"),
])
def test_the_confirmation_names_what_was_withdrawn(purpose: str, locale: str, expected: str) -> None:
    assert opt_out_confirmation("sms", purpose, locale) == expected


def test_dispatch_sends_service_but_not_marketing_after_a_marketing_opt_out(db_url: str) -> None:
    who = make_customer(db_url)
    with session_scope(db_url) as s:
        assert record_opt_out(s, who, "sms", source="reply:sms", dedup_key="k1", purpose="marketing") is not None
    promo = make_touch(db_url, who, "promo", status=TouchStatus.PLANNED, fallback=["wechat"])
    renewal = service_touch(db_url, who, "renewal")
    past = datetime.now(UTC) - timedelta(minutes=5)
    with session_scope(db_url) as s:
        s.execute(update(Touch).values(due_at=past))
    engine = make_engine(db_url)
    with RecordingProvider().running() as provider:
        adapters = {ch: HttpAdapter(ch, provider.port) for ch in ("sms", "wechat", "email")}
        dispatcher = Dispatcher(engine, adapters, PlainRenderer(), worker_id="w")  # type: ignore[arg-type]

        dispatch_until_idle(dispatcher)
    assert touch_row(db_url, renewal).status == TouchStatus.SENT
    cancelled = touch_row(db_url, promo)
    assert cancelled.status == TouchStatus.CANCELLED
    assert cancelled.error_reason == "no marketing consent for sms: a marketing touch is not moved to another channel"
    assert [key for key, _ in provider.accepted] == ["renewal"]
    engine.dispose()


def test_the_planner_picks_a_channel_by_the_touch_s_purpose() -> None:
    reach = Reach("Asia/Shanghai", consent={"sms": True, "wechat": True}, reachable={"sms": True, "wechat": True},
                  marketing={"sms": False, "wechat": True})
    at = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)

    def wanted(category: str) -> Wanted:
        return Wanted(1, f"j-{category}", "v", "s", "o", category, False, 50, ["sms", "wechat"], "t", at)

    decisions, _ = decide([wanted("marketing"), wanted("service")], reach, DeliveryConfig())
    chosen = {d.wanted.category: (d.channel, d.fallback_channels) for d in decisions}
    assert chosen == {"marketing": ("wechat", []), "service": ("sms", ["wechat"])}
