"""The event a template sees after a ``wait_for`` (issue M): the one that wait ended on.

The planner's conditions read the event a ``wait_for`` ended on (``Enrollment.scope_event_id``);
rendering gives the same event to the templates of the steps after it, and ``journeys validate``
checks their ``event.data.*`` against that event type's fields in ``config/events.yaml``. A step
some path reaches without such an event has none in scope. An event entry's message renders with
its event, a policy date entry's with the policy it fired on (not the customer's policy expiring
next).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language.rendering import build_context
from engine.planning.planner import plan
from engine.sending.claiming import ClaimedTouch
from engine.sending.render_batch import StoreRenderer
from store.clock import utcnow
from store.db import get_engine
from store.models import Customer, Event, Policy, Touch
from tests.plan_support import Book

runner = CliRunner()

# A complaint, then the agent's outcome: the message after the wait reads the task.completed event.
AFTER_OUTCOME = """\
id: after-outcome
name: After the outcome
category: service
entry:
  event: {type: complaint.filed}
steps:
  - id: wait_outcome
    wait_for: {event: task.completed, timeout: 1d, on_event: tell, on_timeout: exit}
  - id: tell
    send: {channels: [sms], template: outcome_note}
"""
OUTCOME_NOTE = "{{ customer.name }}: {{ event.type }} {{ event.data.outcome }}"


def _template(book: Book, name: str, text: str) -> None:
    folder = book.templates / name
    folder.mkdir(exist_ok=True)
    (folder / "meta.yaml").write_text(f"description: {name}\ncategory: service\n", encoding="utf-8")
    for locale in ("zh-CN", "en"):
        (folder / f"sms.{locale}.j2").write_text(text, encoding="utf-8")


def _validate(book: Book, name: str, journey: str) -> tuple[int, str]:
    book.journey(name, journey)
    result = runner.invoke(build_app(), ["validate", str(book.journeys / f"{name}.yaml")])
    return result.exit_code, result.output


@pytest.fixture
def checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Book:
    """Journey and template folders of the test's own (validation needs no database)."""
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "cache"))
    book = Book(tmp_path, "sqlite://", monkeypatch)
    # The file is validated by its path; config/tiers.yaml is checked against the shipped journeys.
    monkeypatch.delenv("JOURNEYS_DIR")
    return book


def test_a_template_after_a_wait_for_may_read_that_events_fields(checked: Book) -> None:
    _template(checked, "outcome_note", OUTCOME_NOTE)
    code, output = _validate(checked, "after-outcome", AFTER_OUTCOME)
    assert code == 0, output


def test_an_unknown_field_of_the_waited_event_is_rejected(checked: Book) -> None:
    _template(checked, "outcome_note", "{{ event.data.outcom }}")
    code, output = _validate(checked, "after-outcome", AFTER_OUTCOME)
    assert code != 0
    assert "undefined variable 'event.data.outcom': task.completed has no field 'outcom'" in output
    assert "did you mean 'event.data.outcome'" in output


@pytest.mark.parametrize(("text", "fine", "words"), [
    ("{{ event.words.outcome }}", True, ""),
    ("{{ event.words.outcom }}", False, "did you mean 'event.words.outcome'"),
    ("{{ event.words.text }}", False, "task.completed has no field 'text'"),
])
def test_event_words_are_checked_like_event_data(checked: Book, text: str, fine: bool, words: str) -> None:
    """``event.words.<field>`` (the field's value in words) names the same fields as ``event.data``."""
    _template(checked, "outcome_note", text)
    code, output = _validate(checked, "after-outcome", AFTER_OUTCOME)
    assert (code == 0) is fine, output
    assert words in output


def test_after_the_wait_the_entry_events_fields_are_gone(checked: Book) -> None:
    """complaint.filed has ``text``; the step after the wait sees task.completed, which has none."""
    _template(checked, "outcome_note", "{{ event.data.text }}")
    code, output = _validate(checked, "after-outcome", AFTER_OUTCOME)
    assert code != 0
    assert "task.completed has no field 'text'" in output


def test_a_step_reached_also_by_the_timeout_has_no_event_of_a_schedule_journey(checked: Book) -> None:
    _template(checked, "outcome_note", OUTCOME_NOTE)
    timeout_too = AFTER_OUTCOME.replace("event: {type: complaint.filed}", 'schedule: {cron: "0 10 * * MON"}').replace(
        "on_timeout: exit", "on_timeout: tell"
    )
    code, output = _validate(checked, "after-outcome", timeout_too)
    assert code != 0
    assert "undefined variable 'event.type'" in output
    assert "some path reaches this step without a wait_for ending on its event" in output
    # Only after the event: valid.
    code, output = _validate(checked, "after-outcome", timeout_too.replace("on_timeout: tell", "on_timeout: exit"))
    assert code == 0, output


def _claimed(touch: Touch) -> ClaimedTouch:
    assert touch.id is not None
    return ClaimedTouch(
        touch.id,
        touch.key,
        touch.customer_id,
        touch.journey_id,
        touch.step_id,
        touch.occurrence,
        touch.category,
        touch.urgent,
        touch.channel,
        list(touch.fallback_channels),
        touch.template,
        1,
        touch.due_at,
    )


def _rendered(book: Book, touch: Touch) -> tuple[str, str]:
    """The SMS text as dispatch renders it (a batch) and as a preview does (one customer)."""
    with Session(get_engine(book.url)) as session:
        customer = session.get(Customer, touch.customer_id)
        assert customer is not None
        [batch] = StoreRenderer(str(book.templates)).render_all(
            session, [_claimed(touch)], {touch.customer_id: customer}, utcnow()
        )
        assert not isinstance(batch, BaseException), batch
        from engine.language.rendering import render

        single = render(touch.template, "sms", build_context(session, customer, touch=touch), root=book.templates)
    return batch.text or "", single.text or ""


def _event(external_id: str, type_: str, customer_id: int, data: dict[str, Any], at: datetime) -> Event:
    return Event(
        external_id=external_id, type=type_, customer_id=customer_id, data=data, occurred_at=at, received_at=at
    )


def _context_variables(book: Book, touch: Touch) -> dict[str, Any]:
    with Session(get_engine(book.url)) as session:
        customer = session.get(Customer, touch.customer_id)
        assert customer is not None
        return build_context(session, customer, touch=touch).variables("zh-CN")


def test_the_message_after_a_wait_for_renders_with_the_event_it_ended_on(book: Book) -> None:
    # Only what the entry event has too, so that the journey is valid with the old scope as well.
    _template(book, "outcome_note", "{{ customer.name }}: {{ event.type }}")
    book.journey("after-outcome", AFTER_OUTCOME)
    who = book.customer(name="王芳")
    t0 = utcnow() - timedelta(hours=2)
    book.add(
        _event("ev-complaint", "complaint.filed", who, {"text": "理赔太慢", "category": "claims"}, t0),
        _event(
            "ev-outcome",
            "task.completed",
            who,
            {"task_id": 7, "outcome": "resolved", "queue": "complaints"},
            t0 + timedelta(minutes=30),
        ),
    )
    plan(utcnow(), t0 - timedelta(hours=1), url=book.url)
    [touch] = [t for t in book.touches() if t.step_id == "tell"]
    # Not the entry event (complaint.filed): the one the wait ended on, as the planner's conditions see it.
    assert _rendered(book, touch) == ("王芳: task.completed",) * 2
    assert _context_variables(book, touch)["event"]["data"]["outcome"] == "resolved"


def test_a_message_of_an_event_entry_renders_with_its_event(book: Book) -> None:
    """The occurrence of an event entry is ``event-<id>``, not the event's external id: the lookup by
    external id found nothing, so ``event.data.*`` (valid for the journey) failed at every send."""
    _template(book, "ack", "{{ event.type }} {{ event.data.category }}")
    book.journey(
        "ack",
        """\
        id: ack
        name: Acknowledgement
        category: service
        entry:
          event: {type: complaint.filed}
        steps:
          - id: ack
            send: {channels: [sms], template: ack}
        """,
    )
    who = book.customer()
    t0 = utcnow() - timedelta(hours=1)
    book.add(_event("crm-123", "complaint.filed", who, {"category": "claims"}, t0))
    plan(utcnow(), t0 - timedelta(hours=1), url=book.url)
    [touch] = book.touches()
    assert _rendered(book, touch) == ("complaint.filed claims",) * 2


def test_a_policy_date_entry_renders_with_the_policy_it_fired_on(book: Book) -> None:
    _template(book, "due_note", "{{ policy.product_line }}")
    book.journey(
        "premium",
        """\
        id: premium
        name: Premium
        category: service
        entry:
          date: {anchor: policy.premium_due_date, offset: -7d, at: "10:00"}
        steps:
          - id: remind
            send: {channels: [sms], template: due_note}
        """,
    )
    who = book.customer()
    today = utcnow().date()
    due = today + timedelta(days=7)
    book.add(
        # The customer's motor policy expires first: the old lookup rendered it for every policy journey.
        Policy(
            external_id="P-MOTOR",
            customer_id=who,
            product_line="motor",
            annual_premium=900.0,
            start_date=today - timedelta(days=300),
            expiry_date=today + timedelta(days=64),
        ),
        Policy(
            external_id="P-LIFE",
            customer_id=who,
            product_line="life",
            annual_premium=6000.0,
            start_date=date(2019, due.month, min(due.day, 28)),
            expiry_date=date(2049, 1, 1),
            premium_due_date=due,
            grace_period_end=due + timedelta(days=60),
        ),
    )
    plan(utcnow() + timedelta(days=1), utcnow() - timedelta(days=1), url=book.url)
    [touch] = book.touches()
    assert _rendered(book, touch) == ("life",) * 2
    policy = _context_variables(book, touch)["policy"]
    assert (policy["premium_due_date"], policy["grace_period_end"]) == (due, due + timedelta(days=60))


# A schedule journey asks, waits for the reply and branches on its text (README: the steps after
# on_event see that event as event.*, in conditions and templates).
REPLY_BRANCH = """\
id: reply-branch
name: 年度回顾 / Review
category: service
entry:
  schedule: {cron: "0 10 * * MON"}
steps:
  - id: ask
    send: {channels: [sms], template: msg}
  - id: listen
    wait_for: {event: message.replied, timeout: 3d, on_event: check, on_timeout: exit}
  - id: check
    branch:
      cases:
        - when: {field: event.data.text, op: eq, value: "1"}
          goto: call
      otherwise: exit
  - id: call
    task: {queue: policy_review, due_within: 2d}
"""


def test_a_branch_after_a_wait_for_may_read_that_events_fields(checked: Book) -> None:
    """Before: 'field event.data.text is not available here: only event-entry journeys and wait_for
    see an event', though the planner gives the branch the reply."""
    code, output = _validate(checked, "reply-branch", REPLY_BRANCH)
    assert code == 0, output
    # An event entry: the branch after the wait reads the reply's fields, not only the entry event's.
    entered = REPLY_BRANCH.replace('schedule: {cron: "0 10 * * MON"}', "event: {type: survey.answered}")
    code, output = _validate(checked, "reply-branch", entered)
    assert code == 0, output
    # A field neither event has is still refused, at the condition.
    code, output = _validate(checked, "reply-branch", REPLY_BRANCH.replace("event.data.text", "event.data.txt"))
    assert code != 0
    assert "reply-branch.yaml:14:25:" in output and "unknown field 'event.data.txt' for event message.replied" in output


def test_a_branch_no_wait_for_event_reaches_has_no_event(checked: Book) -> None:
    before_the_wait = REPLY_BRANCH.replace("on_event: check, on_timeout: exit", "on_event: exit, on_timeout: check")
    code, output = _validate(checked, "reply-branch", before_the_wait)
    assert code != 0
    assert "field 'event.data.text' is not available here" in output


def test_the_branch_after_the_reply_is_taken_as_validated(sqlite_book: Book) -> None:
    sqlite_book.journey("reply-branch", REPLY_BRANCH)
    yes, no = sqlite_book.customer(), sqlite_book.customer()
    monday = datetime(2027, 3, 1, 2, tzinfo=UTC)  # 10:00 in Shanghai
    replied = monday + timedelta(hours=5)
    sqlite_book.add(_event("r-yes", "message.replied", yes, {"text": "1", "channel": "sms"}, replied),
                    _event("r-no", "message.replied", no, {"text": "2", "channel": "sms"}, replied))
    plan(monday + timedelta(days=1), monday - timedelta(hours=1), url=sqlite_book.url)
    assert [(t.customer_id, t.step_id) for t in sqlite_book.tasks()] == [(yes, "call")]
