"""Loops between steps. One a customer can go round without a wait is refused, naming its steps at
the step that closes it (before: two sends pointing at each other passed validation, simulate
forecast 2,310 SMS a day and a dry run listed 30 copies of one key per customer, while the real
plan wrote each key once). One that passes a send, task or webhook step is refused too: its touch
has one key per entry, so a dry run counted repeats the real plan never made. What is left plans
the same touch keys in a dry run as in a written one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language.authoring_checks import loop_problems, takes_time
from engine.language.journey_model import Journey
from engine.language.validation import validate_journey_file
from engine.planning.planner import plan
from tests.journey_support import journey
from tests.plan_support import Book, utc, vip_branch, write_templates

ROOT = Path(__file__).resolve().parents[2]
ENTRY = '{schedule: {cron: "0 10 * * *"}}'
SEND = "send: {channels: [sms], template: msg}"

PING_PONG = f"""\
  - id: a
    {SEND}
    next: b
  - id: b
    {SEND}
    next: a
"""
SELF_BRANCH = vip_branch("check", "check", "exit")
PAST_ANCHOR = f"""\
  - id: remind
    {SEND}
  - id: hold
    wait: {{until: {{anchor: customer.attributes.renewal_day, offset: 0d}}}}
    next: look
""" + vip_branch("look", "hold", "exit")
RESEND_DAILY = f"""\
  - id: remind
    {SEND}
  - id: pause
    wait: 1d
    next: remind
"""
# The shortest loop through the first step (pause → look → pause) passes no send; the other one does.
LONG_WAY_ROUND = "  - id: pause\n    wait: 1d\n" + vip_branch("look", "pause", "nudge") + f"""\
  - id: nudge
    {SEND}
    next: pause
"""
# Polling: no touch in the loop, a wait in it: allowed (the book's customers are no VIPs: they get thanked).
POLL = "  - id: ask\n    wait_for: {event: message.replied, timeout: 1d, on_event: thank, on_timeout: check}\n" \
    + vip_branch("check", "ask", "thank") + f"  - id: thank\n    {SEND}\n"

# (steps, the closing step's id line, words the message holds; None: accepted)
CASES: dict[str, tuple[str, str | None, str]] = {
    "two sends pointing at each other": (PING_PONG, "- id: b", "steps a → b → a loop without a wait"),
    "a branch to itself": (SELF_BRANCH, "- id: check", "steps check → check loop without a wait"),
    "a wait until a date that may be past": (PAST_ANCHOR, "- id: look", "steps hold → look → hold loop without"),
    "a send repeated after a wait": (RESEND_DAILY, "- id: pause", "loop back to 'remind'"),
    "polling with a wait and no touch": (POLL, None, ""),
    "a send on the longer way round": (LONG_WAY_ROUND, "- id: nudge",
                                       "pause → look → nudge → pause loop back to 'nudge'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_loops_are_refused_at_the_step_that_closes_them(case: str, tmp_path: Path) -> None:
    steps, marker, words = CASES[case]
    text = journey("loopy", "Loopy", ENTRY, steps)
    path = tmp_path / "loopy.yaml"
    path.write_text(text, encoding="utf-8")
    templates = tmp_path / "templates"
    write_templates(templates, ["msg"])
    loaded, problems = validate_journey_file(path, templates)
    if marker is None:
        assert loaded is not None and problems == [], problems
        return
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if marker in row)
    assert loaded is None
    assert [(p.line, words in p.message) for p in problems] == [(line, True)], problems


STEP_KINDS = st.sampled_from(["send", "task", "wait", "anchored_wait", "update", "branch", "wait_for"])


@st.composite
def step_graphs(draw: st.DrawFn) -> Journey:
    """Journeys of a few steps whose targets go anywhere, backwards too."""
    count = draw(st.integers(1, 6))
    ids = [f"s{i}" for i in range(count)]
    target = st.sampled_from([*ids, "next", "exit"])
    steps = []
    for sid in ids:
        kind = draw(STEP_KINDS)
        step: dict[str, object] = {"id": sid}
        if kind == "send":
            step["send"] = {"channels": ["sms"], "template": "msg"}
        elif kind == "task":
            step["task"] = {"queue": "service_recovery", "due_within": "1d"}
        elif kind == "wait":
            step["wait"] = "1d"
        elif kind == "anchored_wait":
            step["wait"] = {"until": {"anchor": "customer.attributes.day"}}
        elif kind == "update":
            step["update"] = {"field": "customer.attributes.seen", "value": True}
        elif kind == "branch":
            step["branch"] = {"cases": [{"when": {"field": "customer.attributes.vip", "op": "eq", "value": True},
                                         "goto": draw(target)}], "otherwise": draw(target)}
        else:
            step["wait_for"] = {"event": "message.replied", "timeout": "1d", "on_event": draw(target),
                                "on_timeout": draw(target)}
        if kind not in ("branch", "wait_for") and draw(st.booleans()):
            step["next"] = draw(target)
        steps.append(step)
    return Journey.model_validate({"id": "g", "name": "g", "category": "service",
                                   "entry": {"schedule": {"cron": "0 10 * * *"}}, "steps": steps})


def _walks(journey_: Journey, limit: int) -> bool:
    """Whether some path from the first step passes a touching step twice, or runs ``limit`` steps
    without a time-taking step (what the planner would do, without its guard)."""
    ids = {s.id: i for i, s in reversed(list(enumerate(journey_.steps)))}
    stack: list[tuple[int, frozenset[int], int]] = [(0, frozenset(), 0)]
    seen_states: set[tuple[int, frozenset[int], int]] = set()
    while stack:
        index, touched, instant = stack.pop()
        if (index, touched, instant) in seen_states:
            continue
        seen_states.add((index, touched, instant))
        step = journey_.steps[index]
        if step.send or step.task:
            if index in touched:
                return True
            touched = touched | {index}
        instant = 0 if takes_time(step) else instant + 1
        if instant > limit:
            return True
        for t in journey_.successors(index):
            if t in ids:
                stack.append((ids[t], touched, instant))
    return False


@settings(max_examples=1000, deadline=None)
@given(step_graphs())
def test_a_journey_without_loop_problems_never_repeats_a_touch_nor_spins(journey_: Journey) -> None:
    """The check against a brute-force walk of every path: a journey the loop check lets through
    never makes a touch twice in one entry nor goes round without time passing."""
    if loop_problems(journey_):
        return
    assert not _walks(journey_, limit=len(journey_.steps) + 1)


def test_dry_run_and_written_plan_agree_on_touch_keys(sqlite_book: Book) -> None:
    """The differential check: the loops above in the book beside a polling loop and a shipped
    journey; the dry run lists each key once, and exactly the keys the written plan stores."""
    book = sqlite_book
    for name, (steps, _marker, _words) in CASES.items():
        book.journey(name.replace(" ", "-"), journey(name.replace(" ", "-"), name, ENTRY, steps))
    for _ in range(3):
        book.customer()
    result = CliRunner().invoke(build_app(), ["plan", "--from", "2027-03-01T00:00:00+00:00",
                                              "--at", "2027-03-04T00:00:00+00:00", "--json", "--dry-run"])
    assert result.exit_code == 0, result.output
    listed = [json.loads(line)["key"] for line in result.stdout.splitlines()]
    assert listed and len(listed) == len(set(listed))
    plan(utc(2027, 3, 4), utc(2027, 3, 1), url=book.url)
    assert sorted(listed) == sorted(t.key for t in book.touches())
