"""A ``wait_for`` on an outcome (``task.completed``, ``message.delivered``, ``message.failed``) hears the
outcome of its own enrollment's task or message, not another journey's.

Before, the agent's outcome carried only the task, its queue and the outcome: two journeys whose
callbacks share a queue (a lapse win-back and the renewal reminder both call through ``renewal``)
each took the other's "reached" for their own, and the one whose call was never made sent nothing
more. The desk now names the journey and occurrence the task came from, as a webhook's outcome does;
an outcome that names none (another system's) still concerns every enrollment."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from console.auth import CurrentUser, create_user
from console.task_outcomes import complete
from engine.loop.events import emit_event
from engine.planning.planner import plan
from store.clock import as_utc, simulated_time
from store.db import get_engine, session_scope
from store.models import AgentTask, AppUser, Enrollment
from tests.plan_support import Book

SH = ZoneInfo("Asia/Shanghai")


def callback(journey_id: str, event: str) -> str:
    """A journey that calls on ``event`` and sends "we tried to call you" when its call is not answered."""
    return f"""\
id: {journey_id}
name: {journey_id}
category: service
entry:
  event: {{type: {event}}}
steps:
  - id: call
    task: {{queue: renewal, priority: high, due_within: 2d, script: call}}
  - id: outcome
    wait_for: {{event: task.completed, timeout: 5d, on_event: judge, on_timeout: exit}}
  - id: judge
    branch:
      cases:
        - when: {{field: event.data.outcome, op: eq, value: no_answer}}
          goto: tried
      otherwise: exit
  - id: tried
    send: {{channels: [sms], template: msg}}
"""


def states(book: Book) -> dict[str, tuple[str, str | None]]:
    with Session(get_engine(book.url)) as session:
        return {e.journey_id: (e.state, e.exit_reason) for e in session.exec(select(Enrollment)).all()}


def test_an_agents_outcome_answers_only_the_journey_whose_task_it_was(sqlite_book: Book) -> None:
    book = sqlite_book
    book.journey("winback", callback("winback", "policy.lapsed"))
    book.journey("renewal", callback("renewal", "policy.renewed"))
    book.customer(external_id="K1")
    with session_scope(book.url) as session:
        create_user(session, "ann", "long-enough-1", "agent")
    start = datetime(2026, 12, 7, 10, tzinfo=SH)
    with simulated_time(lambda: as_utc(start)):
        emit_event("policy.lapsed", "K1", {}, "lapsed", occurred_at=start, url=book.url)
        emit_event("policy.renewed", "K1", {}, "renewed", occurred_at=start, url=book.url)
    tasks = {t.journey_id: t.id for t in book.tasks()}
    with session_scope(book.url) as session:
        ann = CurrentUser.of(session.exec(select(AppUser).where(AppUser.username == "ann")).one())
    # The renewal call is answered; the win-back call is not made yet.
    done = start + timedelta(hours=2)
    with simulated_time(lambda: as_utc(done)):
        complete(ann, tasks["renewal"] or 0, "reached", now=as_utc(done), db_url=book.url)
    assert states(book) == {"renewal": ("done", "completed"), "winback": ("waiting", None)}
    # The win-back call goes unanswered: its own outcome moves it on to the "we tried" message.
    later = start + timedelta(hours=4)
    with simulated_time(lambda: as_utc(later)):
        complete(ann, tasks["winback"] or 0, "no_answer", now=as_utc(later), db_url=book.url)
    plan(as_utc(later) + timedelta(hours=1), as_utc(later), url=book.url)
    assert [t.step_id for t in book.touches() if t.journey_id == "winback"] == ["tried"]


def test_an_outcome_that_names_no_journey_concerns_every_enrollment(sqlite_book: Book) -> None:
    book = sqlite_book
    book.journey("winback", callback("winback", "policy.lapsed"))
    book.customer(external_id="K1")
    start = datetime(2026, 12, 7, 10, tzinfo=SH)
    with simulated_time(lambda: as_utc(start)):
        emit_event("policy.lapsed", "K1", {}, "lapsed", occurred_at=start, url=book.url)
    [task] = book.tasks()
    assert isinstance(task, AgentTask)
    later = start + timedelta(hours=1)
    with simulated_time(lambda: as_utc(later)):
        # A phone system reporting the outcome without the journey: as before, it is heard.
        emit_event("task.completed", "K1", {"task_id": 999, "outcome": "reached", "queue": "renewal"}, "phone",
                   occurred_at=later, url=book.url)
    assert states(book) == {"winback": ("done", "completed")}
