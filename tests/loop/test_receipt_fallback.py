"""A permanent delivery failure reported by a provider moves the touch to the channel dispatch would
choose (``channels.routing.first_usable``): the next one of its list the customer still consents to
and can be reached on, not merely the next one listed."""

from __future__ import annotations

import urllib.parse

import pytest
from sqlmodel import Session
from twilio.request_validator import RequestValidator

from engine.loop.receipts import apply_receipt, handle_twilio_status
from store.db import get_engine
from store.models import Customer, Event, TouchStatus
from tests.db_support import stored_rows
from tests.loop.test_receipts import make_customer, make_touch, outcomes, touch_row


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


@pytest.mark.parametrize("late", [["delivered"], ["sent"], ["sent", "delivered"], ["undelivered", "delivered"]])
def test_a_late_receipt_of_the_message_that_failed_over_leaves_the_fallback_to_go_out(
        db_url: str, late: list[str]) -> None:
    """Twilio's callbacks come out of order: 'undelivered' (permanent) moves the touch to WeChat with no
    provider id, and a late 'sent' or 'delivered' of the same SMS, found by the touch_key of its signed
    URL, marked that WeChat touch sent or delivered (with the SMS's id), so it never went out."""
    customer = make_customer(db_url)
    touch = make_touch(db_url, customer, "late-1", provider_message_id="SMlate1", fallback=["wechat"])
    url = "https://hooks.example.test/hooks/twilio/status?touch_key=late-1"

    def callback(status: str, code: str | None = None) -> tuple[int, str]:
        form = {"MessageSid": "SMlate1", "MessageStatus": status, **({"ErrorCode": code} if code else {})}
        signature = RequestValidator("fallback-token").compute_signature(url, form)
        return handle_twilio_status(url, {"X-Twilio-Signature": signature}, urllib.parse.urlencode(form).encode(),
                                    db_url=db_url, auth_token="fallback-token")

    assert callback("undelivered", "30003") == (200, "fell_back")
    answers = [callback(status, "30003" if status == "undelivered" else None)[1] for status in late]
    assert answers == ["duplicate" if status == "undelivered" else "unchanged" for status in late]
    row = touch_row(db_url, touch)
    assert (row.status, row.channel, row.provider_message_id) == (TouchStatus.PLANNED, "wechat", None)
    assert [(o.kind, o.channel) for o in outcomes(db_url)] == [(TouchStatus.FAILED, "sms")]
    assert stored_rows(db_url, Event) == []
