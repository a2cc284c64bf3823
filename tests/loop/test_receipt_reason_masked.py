"""A provider's reason for a failed delivery is stored masked: a bounce quotes the address it refused
("550 5.1.1 <wang.wei@example.com>: Recipient address rejected"), an SMS gateway the number, and the
reason is read by people (the agent's task page, ops' explain) from the touch and its outcome.

Dispatch masked the reasons of the send itself; a receipt's reason went into the touch, its outcome
and a parked receipt as the provider wrote it."""

from __future__ import annotations

from sqlmodel import Session

from engine.loop.delivery_receipts import PARKED
from engine.loop.receipts import apply_receipt
from store.db import get_engine
from store.models import TouchStatus
from tests.loop.test_receipts import make_customer, make_touch, outcomes, touch_row

BOUNCE = "550 5.1.1 <wang.wei@example.com>: Recipient address rejected"
UNREACHABLE = "number +8613812345678 unreachable"


def test_a_failed_receipts_reason_is_stored_masked(db_url: str) -> None:
    customer = make_customer(db_url)
    mail = make_touch(db_url, customer, "mail-1", channel="email", provider_message_id="mail-msg-1")
    sms = make_touch(db_url, customer, "sms-1", provider_message_id="SMfail1")
    with Session(get_engine(db_url)) as session:
        for message_id, reason in (("mail-msg-1", BOUNCE), ("SMfail1", UNREACHABLE), ("not-yet-recorded", BOUNCE)):
            apply_receipt(session, provider="email" if "mail" in message_id else "twilio", message_id=message_id,
                          provider_status="failed", new_status=TouchStatus.FAILED, error_code="bounce",
                          error_reason=reason, error_class="retryable", park_unknown=True)
        session.commit()
    assert touch_row(db_url, mail).error_reason == "550 5.1.1 <w***@example.com>: Recipient address rejected"
    assert touch_row(db_url, sms).error_reason == "number 138****5678 unreachable"
    reasons = sorted(o.detail["reason"] for o in outcomes(db_url, TouchStatus.FAILED))
    assert reasons == ["550 5.1.1 <w***@example.com>: Recipient address rejected", "number 138****5678 unreachable"]
    [parked] = outcomes(db_url, PARKED)
    assert parked.detail["error_reason"] == "550 5.1.1 <w***@example.com>: Recipient address rejected"
