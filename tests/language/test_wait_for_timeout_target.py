"""A ``wait_for`` that says where its event goes and not where its timeout goes sends both the same way.

``on_timeout`` left out is the step below: ``wait_for: {event: survey.answered, when: nps <= 6, timeout: 7d,
on_event: callback}`` written above ``callback`` calls every surveyed customer after a week, answered or
not (the planner run below shows it). It was accepted without a word; ``journeys validate`` now warns at
the wait_for (the file stays valid: it may be meant), saying what to write either way."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine.language.validation import validate_journey_file
from engine.loop.events import emit_event
from engine.planning.planner import plan
from store.clock import as_utc, simulated_time
from tests.plan_support import Book, write_templates

SURVEYED = """\
id: surveyed
name: Surveyed
category: service
entry:
  event: {{type: claim.settled}}
steps:
  - id: survey
    send: {{channels: [sms], template: msg}}
  - id: answer
    wait_for: {{event: survey.answered, when: {{field: event.data.nps, op: le, value: 6}}, timeout: 7d{targets}}}
  - id: callback
    task: {{queue: complaints, due_within: 6h, script: call}}
  - id: done
    exit: {{reason: done}}
"""


def warnings(tmp_path: Path, targets: str) -> list[str]:
    write_templates(tmp_path / "templates", ["msg", "call"])
    path = tmp_path / "surveyed.yaml"
    path.write_text(SURVEYED.format(targets=targets), encoding="utf-8")
    loaded, problems = validate_journey_file(path, tmp_path / "templates")
    assert problems == [] and loaded is not None
    return [f"{w.line}: {w.message}" for w in loaded.warnings]


@pytest.mark.parametrize(("targets", "warned"), [
    (", on_event: callback", True),  # the timeout goes on to callback too, unsaid
    (", on_event: next", True),
    (", on_event: callback, on_timeout: done", False),
    (", on_event: callback, on_timeout: callback", False),  # said: meant
    ("", False),  # neither: a wait for the event or the time, then on
    (", on_event: done", False),  # they part
])
def test_the_warning_comes_when_the_timeout_silently_follows_the_event(tmp_path: Path, targets: str,
                                                                     warned: bool) -> None:
    found = warnings(tmp_path, targets)
    assert bool(found) is warned, found
    if warned:
        assert found[0].startswith("10: warning: on_timeout is not given, so when the 7d pass without "
                                   "survey.answered the customer goes on to 'callback' too")


def test_left_out_the_timeout_does_go_on_to_the_callback(sqlite_book: Book) -> None:
    sqlite_book.journey("surveyed", SURVEYED.format(targets=", on_event: callback"))
    sqlite_book.customer(external_id="K1")
    when = datetime(2026, 11, 2, 10, tzinfo=ZoneInfo("Asia/Shanghai"))
    with simulated_time(lambda: as_utc(when)):
        emit_event("claim.settled", "K1", {"claim_id": "X1", "amount": 100.0}, occurred_at=when, url=sqlite_book.url)
    later = as_utc(when) + timedelta(days=8)
    with simulated_time(lambda: later):
        plan(later, as_utc(when), url=sqlite_book.url)
    assert [t.step_id for t in sqlite_book.tasks()] == ["callback"]  # nobody answered, and the call is made
