"""Event triggers: stored once, evaluated at once against event-entry journeys, waits and goals."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from engine.cli import build_app
from engine.loop.events import UnknownCustomer, emit_event
from engine.planning.planner import plan
from store.db import get_engine
from store.models import Enrollment, Event
from tests.events_support import COMPLAINT, SMALL_CLAIM
from tests.plan_support import Book, utc

NEGATIVE = """
id: negative-feedback
name: Negative feedback callback
category: service
urgent: true
entry:
  event:
    type: survey.answered
    when: {field: event.data.nps, op: le, value: 6}
steps:
  - id: callback
    task: {queue: service_recovery, due_within: 6h, priority: high}
"""


@pytest.fixture
def book(book: Book) -> Book:
    """The shared book (tests/conftest.py) with this file's journeys."""
    book.journey("negative", NEGATIVE)
    book.journey("complaint", COMPLAINT)
    book.journey("small-claim", SMALL_CLAIM)
    return book


def test_negative_survey_creates_the_six_hour_callback_once(book: Book) -> None:
    book.customer(external_id="C1")
    answered = utc(2027, 3, 1, 14, 30)  # 22:30 in Shanghai: tasks are not held by quiet hours
    result = emit_event("survey.answered", "C1", {"nps": 4}, event_id="S-1", occurred_at=answered, url=book.url)
    assert (result.created, result.touches, result.tasks) == (True, 0, 1)
    [task] = book.tasks()
    key = f"{task.customer_id}:negative-feedback:callback:event-{result.event_id}"
    # service_recovery runs on business hours: six open hours from 09:00 the next working day (15:00 there).
    assert (task.queue, task.priority, task.due_at, task.key) == ("service_recovery", 1, utc(2027, 3, 2, 7), key)
    again = emit_event("survey.answered", "C1", {"nps": 4}, event_id="S-1", occurred_at=answered, url=book.url)
    assert (again.event_id, again.created, again.tasks) == (result.event_id, False, 0)
    assert len(book.tasks()) == 1
    happy = emit_event("survey.answered", "C1", {"nps": 9}, event_id="S-2", occurred_at=answered, url=book.url)
    assert (happy.created, happy.tasks) == (True, 0)
    with Session(get_engine(book.url)) as session:
        assert all(e.processed_at is not None for e in session.exec(select(Event)).all())


def test_complaint_and_small_claim(book: Book) -> None:
    cid = book.customer(external_id="C2")
    filed = utc(2027, 3, 1, 14)  # 22:00 local
    r = emit_event("complaint.filed", "C2", {"category": "service"}, event_id="K-1", occurred_at=filed, url=book.url)
    assert (r.touches, r.tasks) == (1, 1)
    claim = emit_event("claim.filed", "C2", {"claim_id": "CL-9", "amount": 1200.0}, event_id="F-1",
                       occurred_at=filed, url=book.url)
    big = emit_event("claim.filed", "C2", {"claim_id": "CL-10", "amount": 90000.0}, event_id="F-2",
                     occurred_at=filed, url=book.url)
    assert (claim.touches, claim.tasks, big.touches, big.tasks) == (1, 1, 0, 0)
    tasks = {t.queue: t.due_at for t in book.tasks()}
    # Complaints keep 24 h of wall time; the fast track's 2 h are open hours from 09:00 the next morning.
    assert tasks == {"complaints": utc(2027, 3, 2, 14), "claims_fast_track": utc(2027, 3, 2, 3)}
    touches = {t.journey_id: (t.due_at, t.urgent) for t in book.touches()}
    # The complaint acknowledgement waits for 08:00; the urgent claim acknowledgement does not.
    assert touches == {"complaint": (utc(2027, 3, 2, 0), False), "small-claim": (filed, True)}
    assert cid == book.tasks()[0].customer_id


def test_wait_for_event_and_goal_exit(book: Book) -> None:
    book.journey("nudge", """
        id: nudge
        name: Nudge
        category: service
        entry: {schedule: {cron: "0 10 1 3 *"}}
        goal: {event: policy.renewed}
        steps:
          - id: first
            send: {channels: [sms], template: msg}
          - id: reply
            wait_for: {event: message.replied, timeout: 3d, on_event: thanks, on_timeout: again}
          - id: again
            send: {channels: [sms], template: msg}
          - id: wait
            wait: 5d
          - id: last
            send: {channels: [sms], template: msg}
            next: exit
          - id: thanks
            send: {channels: [sms], template: msg}
    """)
    a = book.customer(external_id="A")
    b = book.customer(external_id="B")
    book.customer(external_id="C")
    plan(utc(2027, 3, 1, 12), utc(2027, 2, 28), url=book.url)
    replied = emit_event("message.replied", "A", {"channel": "sms"}, occurred_at=utc(2027, 3, 2, 3), url=book.url)
    assert replied.touches == 1
    emit_event("policy.renewed", "C", {"policy_id": "P1"}, occurred_at=utc(2027, 3, 2, 3), url=book.url)
    plan(utc(2027, 3, 12), url=book.url)
    steps = sorted((t.customer_id, t.step_id, t.due_at) for t in book.touches())
    c = b + 1
    assert steps == [
        (a, "first", utc(2027, 3, 1, 2)), (a, "thanks", utc(2027, 3, 2, 3)),
        (b, "again", utc(2027, 3, 4, 2)), (b, "first", utc(2027, 3, 1, 2)), (b, "last", utc(2027, 3, 9, 2)),
        (c, "first", utc(2027, 3, 1, 2)),
    ]
    with Session(get_engine(book.url)) as session:
        states = session.exec(select(Enrollment.customer_id, Enrollment.state, Enrollment.exit_reason)
                              .where(Enrollment.journey_id == "nudge").order_by(col(Enrollment.customer_id))).all()
    assert list(states) == [(a, "done", "completed"), (b, "done", "completed"), (c, "exited", "goal")]


def test_unprocessed_events_are_picked_up_by_plan(book: Book) -> None:
    cid = book.customer(external_id="D")
    book.add(Event(external_id="late-1", type="survey.answered", customer_id=cid, data={"nps": 2},
                   occurred_at=utc(2027, 3, 1, 1), received_at=utc(2027, 3, 1, 1)))
    result = plan(utc(2027, 3, 1, 2), utc(2027, 3, 1), url=book.url)
    assert (result.tasks_written, result.events_processed) == (1, 1)
    assert plan(utc(2027, 3, 1, 2), utc(2027, 3, 1), url=book.url).tasks_written == 0


def test_unknown_customer_and_cli(book: Book) -> None:
    with pytest.raises(UnknownCustomer):
        emit_event("complaint.filed", "nobody", {}, url=book.url)
    book.customer(external_id="E")
    runner = CliRunner()
    args = ["event", "emit", "survey.answered", "--customer", "E", "--data", '{"nps": 5}', "--id", "cli-1"]
    first = runner.invoke(build_app(), args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"event_id": 1, "created": True, "touches": 0, "tasks": 1}
    second = runner.invoke(build_app(), args)
    assert json.loads(second.stdout) == {"event_id": 1, "created": False, "touches": 0, "tasks": 0}


def test_survey_answered_event_records_its_scores_once(db_url: str) -> None:
    """NPS and CSAT sent by other systems count like answers by reply; a repeated event id adds nothing."""
    from datetime import UTC, datetime

    from sqlmodel import Session, select

    from engine.loop.events import emit_event
    from store.db import get_engine
    from store.models import Customer, SurveyAnswer

    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    with Session(get_engine(db_url)) as session:
        session.add(Customer(external_id="S1", name="李四", tier="gold", created_at=t0, updated_at=t0))
        session.commit()
    for _ in range(2):
        emit_event("survey.answered", "S1", {"nps": 9, "csat": 4, "comment": "好"}, event_id="svy-1",
                   occurred_at=t0, url=db_url)
    emit_event("survey.answered", "S1", {"nps": 42}, event_id="svy-2", occurred_at=t0, url=db_url)
    with Session(get_engine(db_url)) as session:
        rows = session.exec(select(SurveyAnswer)).all()
    assert sorted((r.kind, r.score) for r in rows) == [("csat", 4), ("nps", 9)]
