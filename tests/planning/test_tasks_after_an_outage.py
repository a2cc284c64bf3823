"""An agent task the plan run writes while catching up after the service was down is created when its step
was due, not when the run got to it, so the report counts the days the customer waited.

A complaint comes in on Friday at 22:00 while ``journeys run`` is down (the API stored it; nothing acted on
it) and the service is back on Monday at 10:00. The catch-up run writes the complaint's task, due on
Saturday at 22:00 (24 hours on the complaints queue's wall clock, from the complaint) and created on Friday
at 22:00, and the supervisor's escalation, created on Saturday at 22:00 when the 24-hour wait ran out. An
agent closes the first at 11:00. The report of the week the complaint came in counts both, 61 hours from
creation to completion and both SLAs missed; with the tasks created at the write it counted none of them
(and a later week's would have read 1 hour). Real planner and report, SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session

from engine.loop.metrics import compute_metrics
from engine.planning.planner import plan
from store.clock import as_utc, simulated_time
from store.db import get_engine
from store.models import AgentTask, Event
from tests.plan_support import Book

SH = ZoneInfo("Asia/Shanghai")
FRIDAY_EVENING = datetime(2027, 3, 5, 20, 0, tzinfo=SH)  # the last tick before the service went down
COMPLAINT = datetime(2027, 3, 5, 22, 0, tzinfo=SH)
MONDAY = datetime(2027, 3, 8, 10, 0, tzinfo=SH)  # back


def test_a_task_written_in_catch_up_is_created_when_it_was_due_and_reported_as_late(book: Book) -> None:
    book.shipped("complaint-response")
    cid = book.customer()
    with simulated_time(lambda: as_utc(FRIDAY_EVENING)):
        plan(FRIDAY_EVENING, FRIDAY_EVENING - timedelta(minutes=5), url=book.url)
    book.add(Event(external_id="complaint-1", type="complaint.filed", customer_id=cid, data={"category": "service"},
                   occurred_at=COMPLAINT, received_at=COMPLAINT))
    with simulated_time(lambda: as_utc(MONDAY)):
        plan(MONDAY, url=book.url)  # from where Friday's run ended

    # The agent's task, and the supervisor's when nobody resolved it in 24 hours (Saturday 22:00, 4 hours).
    task, escalation = book.tasks()
    assert [(t.queue, as_utc(t.created_at), as_utc(t.due_at)) for t in (task, escalation)] == [
        ("complaints", as_utc(COMPLAINT), as_utc(COMPLAINT + timedelta(hours=24))),
        ("complaints_supervisor", as_utc(COMPLAINT + timedelta(hours=24)), as_utc(COMPLAINT + timedelta(hours=28)))]

    closed = MONDAY + timedelta(hours=1)
    with Session(get_engine(book.url)) as session:
        session.execute(update(AgentTask).where(AgentTask.id == task.id)  # type: ignore[arg-type]
                        .values(status="done", outcome_code="resolved", completed_at=closed))
        session.commit()
    week = compute_metrics(datetime(2027, 3, 1, tzinfo=SH), datetime(2027, 3, 8, tzinfo=SH),
                           now=closed + timedelta(hours=1), url=book.url).total
    # Friday 22:00 to Monday 11:00, done after its due time (Saturday 22:00); the escalation open past its own.
    assert (week["tasks"], week["task_hours"], week["sla_judged"], week["sla_met"]) == (2, 61.0, 2, 0)
