"""Receipts in any order: a touch is counted once, as its first final receipt said.

Providers repeat callbacks and deliver them out of order, and some send a final status that contradicts
an earlier one (Twilio: ``failed`` after ``delivered``). Signed status callbacks go through the real
handler into a migrated SQLite store; a model (the first final receipt wins, a later 'sent' changes
nothing) says what the touch, its outcomes, its events and the period's metrics must show.
"""

from __future__ import annotations

import itertools
import urllib.parse
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select
from twilio.request_validator import RequestValidator

from engine.loop.metrics import compute_metrics
from engine.loop.receipts import TWILIO_STATUS, handle_twilio_status
from store.db import session_scope
from store.models import Event, Outcome, Touch, TouchStatus
from tests.db_support import inserted
from tests.loop.test_receipts import make_customer, touch_row

TOKEN = "receipt-order-token"
URL = "https://hooks.example.test/hooks/twilio/status"
START = datetime(2026, 6, 1, tzinfo=UTC)
FINAL = (TouchStatus.DELIVERED, TouchStatus.FAILED)
_serial = itertools.count()

receipt = st.tuples(st.sampled_from(sorted(TWILIO_STATUS)), st.sampled_from([None, "30003", "30005", "30008"]))


def _touch(url: str, customer_id: int, n: int, status: str) -> int:
    """A touch of its own hour (so the metrics of that hour are this touch's alone), no fallback channel."""
    at = START + timedelta(hours=n)
    return inserted(url, Touch(key=f"order-{n}", customer_id=customer_id, journey_id="j", journey_version="v1",
                               step_id="s", occurrence=f"order-{n}", category="service", channel="sms",
                               template="t", planned_for=at, due_at=at, status=status,
                               provider_message_id=f"SMorder{n}", fallback_channels=[], sent_at=at, created_at=at))


def _callback(url: str, sid: str, status: str, code: str | None) -> tuple[int, str]:
    form = {"MessageSid": sid, "MessageStatus": status, **({"ErrorCode": code} if code else {})}
    signature = RequestValidator(TOKEN).compute_signature(URL, form)
    return handle_twilio_status(URL, {"X-Twilio-Signature": signature}, urllib.parse.urlencode(form).encode(),
                                db_url=url, auth_token=TOKEN)


def _expected(initial: str, receipts: list[tuple[str, str | None]]) -> str:
    """The model: the first final receipt settles the touch; before it, 'sent' moves a sending touch."""
    status = initial
    for raw, _code in receipts:
        mapped = TWILIO_STATUS[raw]
        if mapped in FINAL:
            return mapped
        if mapped == TouchStatus.SENT:
            status = TouchStatus.SENT
    return status


def _final_outcomes(url: str, touch_id: int) -> list[str]:
    with session_scope(url) as s:
        return list(s.exec(select(Outcome.kind).where(Outcome.touch_id == touch_id, col(Outcome.kind).in_(FINAL))))


def _final_events(url: str, touch_id: int) -> list[str]:
    with session_scope(url) as s:
        rows = s.exec(select(Event).where(col(Event.type).in_([f"message.{k}" for k in FINAL])))
        return [e.type for e in rows if e.data.get("touch_id") == touch_id]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=st.sampled_from([TouchStatus.SENDING, TouchStatus.SENT]),
       receipts=st.lists(receipt, min_size=1, max_size=7))
def test_any_order_of_receipts_counts_the_touch_once(db_url: str, initial: str,
                                                     receipts: list[tuple[str, str | None]]) -> None:
    n = next(_serial)
    touch = _touch(db_url, make_customer(db_url, f"C-order-{n}", phone=None, openid=None, email=None), n, initial)
    for raw, code in receipts:
        status, answer = _callback(db_url, f"SMorder{n}", raw, code)
        assert status == 200, answer

    expected = _expected(initial, receipts)
    assert touch_row(db_url, touch).status == expected
    settled = [expected] if expected in FINAL else []
    assert _final_outcomes(db_url, touch) == settled
    assert _final_events(db_url, touch) == [f"message.{k}" for k in settled]
    hour = START + timedelta(hours=n)
    total = compute_metrics(hour, hour + timedelta(hours=1), now=hour, url=db_url).total
    assert (total["planned"], total["delivered"], total["failed"]) == (
        1, int(expected == TouchStatus.DELIVERED), int(expected == TouchStatus.FAILED))


def test_a_late_failed_receipt_after_delivered_adds_no_failure(db_url: str) -> None:
    """The reviewers' probe: ``failed`` with ErrorCode 30005 for a message already delivered."""
    n = next(_serial)
    touch = _touch(db_url, make_customer(db_url, f"C-order-{n}"), n, TouchStatus.SENT)
    assert _callback(db_url, f"SMorder{n}", "delivered", None) == (200, "applied")
    assert _callback(db_url, f"SMorder{n}", "failed", "30005") == (200, "unchanged")
    assert _callback(db_url, f"SMorder{n}", "delivered", None) == (200, "duplicate")
    assert touch_row(db_url, touch).status == TouchStatus.DELIVERED
    assert _final_outcomes(db_url, touch) == [TouchStatus.DELIVERED]
    assert _final_events(db_url, touch) == ["message.delivered"]
