"""What journeys/README.md's step table says about a task's due time (its queue's clock) and about
``urgent: false`` on a send of an urgent journey, through the event path as a journey meets them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from engine.loop.events import emit_event
from store.clock import as_utc, simulated_time
from tests.plan_support import Book

SH = ZoneInfo("Asia/Shanghai")

ACK = """\
id: ack
name: Ack
category: service
urgent: true
entry:
  event: {type: complaint.filed}
steps:
  - id: at_once
    send: {channels: [sms], template: msg}
  - id: call
    task: {queue: renewal, priority: high, due_within: 2d, script: call}
  - id: next_morning
    send: {channels: [sms], template: msg, urgent: false}
"""


def test_an_urgent_journeys_quiet_send_waits_for_morning_and_its_task_counts_working_days(book: Book) -> None:
    book.journey("ack", ACK)
    book.customer(external_id="K1")
    when = datetime(2026, 12, 5, 23, 30, tzinfo=SH)  # a Saturday night
    with simulated_time(lambda: as_utc(when)):
        emit_event("complaint.filed", "K1", {"category": "service"}, occurred_at=when, url=book.url)
    assert {t.step_id: as_utc(t.due_at) for t in book.touches()} == {
        "at_once": as_utc(when),  # the journey is urgent: at once, in the quiet hours
        "next_morning": as_utc(datetime(2026, 12, 6, 8, tzinfo=SH)),  # this send is not: held to 08:00
    }
    # renewal runs on the business clock: from Saturday night, two working days after Monday 09:00.
    assert [as_utc(t.due_at) for t in book.tasks()] == [as_utc(datetime(2026, 12, 9, 9, tzinfo=SH))]
