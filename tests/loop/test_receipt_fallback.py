"""A permanent delivery failure reported by a provider moves the touch to the channel dispatch would
choose (``channels.routing.first_usable``): the next one of its list the customer still consents to
and can be reached on, not merely the next one listed."""

from __future__ import annotations

from sqlmodel import Session

from engine.loop.receipts import apply_receipt
from store.db import get_engine
from store.models import Customer, TouchStatus
from tests.loop.test_receipts import make_customer, make_touch, touch_row


def test_permanent_delivery_failure_falls_back_to_the_next_consented_reachable_channel(db_url: str) -> None:
    customer = make_customer(db_url)
    with Session(get_engine(db_url)) as session:
        row = session.get(Customer, customer)
        assert row is not None
        row.consent_sms = False  # withdrawn after the touch was planned with SMS as its fallback
        session.commit()
    moved = make_touch(db_url, customer, "wx-1", channel="wechat", provider_message_id="wx-msg-1",
                       fallback=["sms", "email"])
    stuck = make_touch(db_url, customer, "wx-2", channel="wechat", provider_message_id="wx-msg-2", fallback=["sms"])

    with Session(get_engine(db_url)) as session:
        for msg in ("wx-msg-1", "wx-msg-2"):
            apply_receipt(session, provider="wechat", message_id=msg, provider_status="failed:user block",
                          new_status=TouchStatus.FAILED, error_code="failed:user block", error_reason="user block",
                          error_class="permanent")
        session.commit()

    first = touch_row(db_url, moved)
    assert (first.status, first.channel, first.fallback_channels) == (TouchStatus.PLANNED, "email", [])
    second = touch_row(db_url, stuck)
    assert (second.status, second.channel, second.error_reason) == (TouchStatus.FAILED, "wechat", "user block")
