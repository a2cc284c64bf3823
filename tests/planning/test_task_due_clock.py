"""A task is due on its queue's clock from the moment the planner creates it.

Before, the planner wrote ``due_at = start + due_within`` on the wall clock and the desk round
corrected it up to a minute later, so a dry run, explain and simulate showed a negative survey
answered at 22:00 as due at 04:00. Now the planner writes the due time and the warning time on
the queue's clock (``engine.language.sla_clock``): business hours on the PRC working-day
calendar for service_recovery, 24 hours of wall time for complaints (``config/queues.yaml``).
Dates are checked against the PRC calendar (2025: National Day off 1-8 October, Saturday
11 October worked in exchange).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.sla import settle_new_tasks
from engine.language.sla_clock import Clock, current_clocks, sla_times
from engine.language.work_calendar import current as current_calendar
from engine.loop.events import emit_event
from engine.planning.plan_output import ChunkOutput
from engine.planning.planner import plan
from store.clock import as_utc, simulated_time
from store.models import Event
from tests.plan_support import Book

SH = ZoneInfo("Asia/Shanghai")
HOUR = timedelta(hours=1)
CLOCKS = current_clocks()  # the shipped config/queues.yaml


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SH)


def _stored_event(book: Book, when: datetime, kind: str, data: dict[str, Any]) -> None:
    """An event in the store that no run has acted on yet (as one imported in bulk)."""
    cid = book.customer()
    book.add(Event(external_id=f"ev-{kind}", type=kind, customer_id=cid, data=data, occurred_at=when,
                   received_at=when))


def _dry_then_written(book: Book, when: datetime) -> tuple[list[tuple[str, datetime, datetime | None]],
                                                            list[tuple[str, datetime, datetime | None]]]:
    """(queue, due, warn) of the tasks a dry run plans, then of those the same run writes."""
    chunks: list[ChunkOutput] = []
    plan(as_utc(when) + HOUR, as_utc(when) - HOUR, dry_run=True, url=book.url, sink=chunks.append)
    dry = [(t.queue, t.due_at, t.warn_at) for c in chunks for t in c.tasks]
    assert book.tasks() == []  # the dry run wrote nothing
    plan(as_utc(when) + HOUR, as_utc(when) - HOUR, url=book.url)
    written = [(t.queue, as_utc(t.due_at), as_utc(t.warn_at) if t.warn_at else None) for t in book.tasks()]
    return dry, written


SURVEY_CASES = [
    # (answered, due, warn): 6 open hours from the next opening, the warning at 80% of them.
    ("2025-11-18 22:00", "2025-11-19 15:00", "2025-11-19 13:48"),  # after hours: from 09:00 the next day
    ("2025-09-30 17:00", "2025-10-09 14:00", "2025-10-09 12:48"),  # eve of National Day: 1 h, then 9 October
    ("2025-10-10 17:00", "2025-10-11 14:00", "2025-10-11 12:48"),  # eve of Saturday 11 October, a make-up day
]


@pytest.mark.parametrize(("answered", "due", "warn"), SURVEY_CASES)
def test_a_negative_survey_task_is_due_in_business_hours_in_a_dry_run_and_a_written_run(
        book: Book, answered: str, due: str, warn: str) -> None:
    book.shipped("negative-survey-callback")
    _stored_event(book, at(answered), "survey.answered", {"survey": "nps", "nps": 3})
    dry, written = _dry_then_written(book, at(answered))
    assert dry == written == [("service_recovery", at(due), at(warn))]
    # The desk round has nothing left to correct: the row keeps the times the dry run showed.
    assert settle_new_tasks(at(answered) + HOUR, db_url=book.url) == 0
    assert [(as_utc(t.due_at), t.warn_at is not None) for t in book.tasks()] == [(at(due), True)]


def test_the_event_path_writes_the_business_hours_due_time_at_once(book: Book) -> None:
    book.shipped("negative-survey-callback")
    book.customer(external_id="K1")
    when = at("2025-11-18 22:00")
    with simulated_time(lambda: when):
        result = emit_event("survey.answered", "K1", {"survey": "nps", "nps": 2}, occurred_at=when, url=book.url)
    assert result.tasks == 1
    [task] = book.tasks()
    assert (as_utc(task.due_at), as_utc(task.warn_at) if task.warn_at else None) == (
        at("2025-11-19 15:00"), at("2025-11-19 13:48"))  # not 04:00, with nobody at the desk


def test_a_complaint_keeps_its_24_hours_of_wall_time(book: Book) -> None:
    book.shipped("complaint-response")
    when = at("2025-09-30 22:00")  # the eve of a week of holidays changes nothing on a wall clock
    _stored_event(book, when, "complaint.filed", {"category": "service"})
    dry, written = _dry_then_written(book, when)
    assert dry == written == [("complaints", at("2025-10-01 22:00"), at("2025-10-01 17:12"))]


@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31)),
       st.sampled_from(["service_recovery", "complaints", "gold_callback"]),
       st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=10)))
def test_the_planners_clocks_agree_with_a_fresh_clock_on_the_calendar(start: datetime, queue: str,
                                                                     window: timedelta) -> None:
    # The run's clocks remember working days and sums; a clock that remembers nothing must agree.
    fresh = Clock(CLOCKS.desk.business_hours, current_calendar())
    moment = start.replace(tzinfo=SH)
    due, warn = CLOCKS.times(queue, moment, window)
    assert (due, warn) == sla_times(CLOCKS.desk.queue(queue), moment, window, fresh)
    assert moment <= warn <= due
    if queue == "complaints":
        assert due == moment + window  # wall time
    else:  # business hours: due inside the centre's hours on a working day
        local = due.astimezone(SH)
        assert fresh.is_working_day(local.date()) and time(9) <= local.time() <= time(18)
