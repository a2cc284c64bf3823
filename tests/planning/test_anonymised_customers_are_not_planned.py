"""An anonymised customer enters no journey again (SPEC §9). The purge keeps the customer row with its
tier, zone and policies for the figures, so a schedule for the tier, a date on a policy and an event
reported under the ``anonymised-<id>`` external id each enrolled it once more: new touches to cancel at
sending, and callback tasks for a nameless customer with no number in an agent's inbox."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session, select

from engine.loop.events import emit_event
from engine.planning.planner import plan
from store.db import get_engine
from store.models import Event, Policy
from tests.events_support import COMPLAINT
from tests.journey_support import journey
from tests.plan_support import Book, send_journey

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
WEEKLY_CALL = journey("weekly-call", "Weekly call", '{schedule: {cron: "0 10 * * MON"}}', """\
  - id: call
    task: {queue: gold_callback, due_within: 7d}
""")
RENEWAL = send_journey("renewal", "Renewal", '{date: {anchor: policy.expiry_date, offset: -3d, at: "10:00"}}',
                       step="remind", channels="[sms]")


def test_an_anonymised_customer_enters_no_schedule_date_or_event_journey(book: Book) -> None:
    book.journey("weekly-call", WEEKLY_CALL)
    book.journey("renewal", RENEWAL)
    book.journey("complaint", COMPLAINT)
    kept = book.customer(tier="gold")
    gone = book.customer(tier="gold", external_id="anonymised-2", name="匿名", phone=None, email=None,
                         wechat_openid=None, anonymised_at=NOW - timedelta(days=30))
    for n, cid in enumerate((kept, gone)):
        book.add(Policy(external_id=f"P{n}", customer_id=cid, product_line="motor", annual_premium=900.0,
                        start_date=date(2025, 6, 20), expiry_date=date(2026, 6, 20), status="active"))
    plan(NOW + timedelta(days=7), NOW, url=book.url)
    emit_event("complaint.filed", "anonymised-2", {"category": "billing"}, url=book.url)
    emit_event("complaint.filed", "C00001", {"category": "billing"}, url=book.url)

    assert {t.customer_id for t in book.tasks()} == {kept}
    assert {t.customer_id for t in book.touches()} == {kept}
    assert {(t.journey_id, t.step_id) for t in book.tasks() + book.touches()} == {  # type: ignore[operator]
        ("weekly-call", "call"), ("renewal", "remind"), ("complaint", "respond"), ("complaint", "ack")}
    with Session(get_engine(book.url)) as session:  # read, so no later plan reads it again
        assert all(e.processed_at is not None for e in session.exec(select(Event)).all())
