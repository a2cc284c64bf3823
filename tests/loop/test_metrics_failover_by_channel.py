"""By channel, a touch that failed on one channel and went on to the next counts against the first.

A touch is counted under the channel it ended on. An SMS to an invalid number that then went out by
e-mail showed under e-mail alone: the SMS's failure was in no figure, so by channel SMS looked as if it
had never been tried. Now each channel a touch failed on and left counts as ``failed_over`` under that
channel, and the delivery rate counts it among the channel's attempts. The sends go through the real
dispatcher to an HTTP stand-in; the receipt through the real receipt handler.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from engine.loop.delivery_receipts import apply_receipt
from engine.loop.metrics import compute_metrics
from store.clock import utcnow
from store.db import make_engine, session_scope
from tests.dispatch_support import (
    RecordingProvider,
    dispatch_until_idle,
    make_customers,
    make_touches,
    recording_dispatcher,
)


def test_a_channel_that_failed_over_counts_its_failure(db_url: str) -> None:
    engine = make_engine(db_url)
    ids = make_customers(engine, 3)
    make_touches(engine, ids, fallback=["email"])
    with RecordingProvider().running() as provider:
        # Customers 0 and 1: invalid numbers, so e-mail; customer 1's address is refused too. Customer 2: SMS.
        provider.fail = {"+8613800000000": (400, "21211"), "+8613800000001": (400, "21211"),
                         "c1@example.com": (400, "550")}
        dispatch_until_idle(recording_dispatcher(engine, provider))
    with engine.connect() as conn:
        sent = conn.execute(text("SELECT customer_id, channel, status, provider_message_id FROM touch")).all()
    assert sorted((r.channel, r.status) for r in sent) == [("email", "failed"), ("email", "sent"), ("sms", "sent")]
    by_customer = {r.customer_id: r for r in sent}
    with session_scope(db_url) as session:  # the e-mail of customer 0 and the SMS of customer 2 delivered
        for customer in (ids[0], ids[2]):
            row = by_customer[customer]
            apply_receipt(session, provider=row.channel, message_id=row.provider_message_id,
                          provider_status="delivered", new_status="delivered")
    engine.dispose()

    now = utcnow()
    start, end = now - timedelta(days=1), now + timedelta(days=1)
    channel = compute_metrics(start, end, "channel", now=now, url=db_url).groups
    sms, email = channel["sms"], channel["email"]
    # SMS: tried for all three, delivered one (customer 2), failed over twice.
    assert sms["delivery_rate"] == 0.3333
    assert (sms["planned"], sms["delivered"], sms["failed"], sms["failed_over"]) == (1, 1, 0, 2)
    # E-mail: the two that came from SMS; one delivered, one failed for good.
    assert (email["planned"], email["delivered"], email["failed"], email["failed_over"]) == (2, 1, 1, 0)
    assert email["delivery_rate"] == 0.5

    total = compute_metrics(start, end, now=now, url=db_url).total
    # Five attempts (three SMS, two e-mails), two delivered; three touches planned, two reached.
    assert (total["failed_over"], total["delivery_rate"], total["reach_rate"]) == (2, 0.4, 0.6667)
    for by in ("channel", "tier", "journey", "branch"):  # the same whatever the grouping
        grouped = compute_metrics(start, end, by, now=now, url=db_url)
        assert (grouped.total["failed_over"], grouped.total["delivery_rate"]) == (2, 0.4), by
        assert sum(g["failed_over"] or 0 for g in grouped.groups.values()) == 2, by
