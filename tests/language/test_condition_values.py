"""A condition whose value has the wrong type for its field and operator is refused at its line:
such a leaf would otherwise match everyone or no one (a birthday ``gt 5`` compares epoch seconds
with 5, ``contains [motor]`` never holds). Values of the right type, and every condition the
shipped journeys hold, still pass."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.language import validation
from engine.language.condition_values import leaf_problems
from store.models import TIERS

ROOT = Path(__file__).resolve().parents[2]
BASE = (ROOT / "journeys" / "negative-survey-callback.yaml").read_text(encoding="utf-8")
SLOT = "        - {field: event.data.csat, op: le, value: 2}"


def _problems(condition: str, tmp_path: Path) -> tuple[str, list[validation.Problem]]:
    assert SLOT in BASE
    text = BASE.replace(SLOT, f"        - {condition}", 1)
    path = tmp_path / "journey.yaml"
    path.write_text(text, encoding="utf-8")
    _, problems = validation.validate_journey_file(path, ROOT / "templates")
    return text, problems


# (condition, words the message holds) — one per field kind × operator × bad value.
BAD: list[tuple[str, str]] = [
    # numbers
    ('{field: customer.age, op: ge, value: "abc"}', "customer.age is a number; ge needs a number, not 'abc'"),
    ("{field: customer.age, op: lt, value: true}", "customer.age is a number; lt needs a number"),
    ('{field: customer.age, op: eq, value: "30"}', "customer.age is a number; eq needs a number"),
    ("{field: customer.age, op: ne, value: [30]}", "customer.age is a number; ne needs a number"),
    ("{field: customer.tier_score, op: in, value: [gold]}", "tier_score is a number; in needs a list of numbers"),
    ('{field: customer.tier_score, op: not_in, value: [1, "2"]}', "not_in needs a list of numbers"),
    ("{field: customer.age, op: contains, value: 3}", "customer.age is a number; contains needs a list or text field"),
    ("{field: customer.age, op: within_last, value: 30d}", "operator within_last needs a date field"),
    # dates and datetimes
    ("{field: customer.birthday, op: gt, value: 5}", "customer.birthday is a date; gt needs a date"),
    ("{field: customer.birthday, op: eq, value: yesterday}", "customer.birthday is a date; eq needs a date"),
    ("{field: customer.birthday, op: in, value: [2024-13-01]}", "in needs a list of dates"),
    ("{field: customer.last_active_at, op: le, value: 1700000000}", "customer.last_active_at is a date and time; le"),
    ("{field: customer.birthday, op: contains, value: '01-31'}", "contains needs a list or text field"),
    # The date of birth is years back: "birthday in the next 7 days" never holds, whatever the day.
    ("{field: customer.birthday, op: within_next, value: 7d}", "enter on it: entry: {date: {anchor: customer.birthday"),
    ("{field: customer.birthday, op: within_last, value: 3d}", "customer.birthday is the date of birth, years ago"),
    # text
    ("{field: customer.branch, op: eq, value: 101}", "customer.branch is text; eq needs text, not 101"),
    ("{field: customer.branch, op: gt, value: 5}", "customer.branch is text; gt needs text"),
    ("{field: customer.branch, op: in, value: [101, sh]}", "customer.branch is text; in needs a list of text"),
    ("{field: customer.branch, op: contains, value: [sh]}", "contains takes one value, not a list"),
    ("{field: customer.branch, op: contains, value: 1}", "contains needs one piece of text"),
    # booleans
    ('{field: customer.consent_sms, op: eq, value: "yes"}', "consent_sms is true or false; eq needs true or false"),
    ("{field: customer.consent_sms, op: in, value: [1]}", "in needs a list of true or false values"),
    ("{field: customer.consent_sms, op: gt, value: false}", "its values have no order"),
    ("{field: customer.consent_sms, op: contains, value: true}", "contains needs a list or text field"),
    # lists of text
    ("{field: customer.product_lines, op: contains, value: [motor]}", "contains takes one value, not a list"),
    ("{field: customer.product_lines, op: contains, value: 3}", "contains needs one piece of text"),
    ("{field: customer.product_lines, op: in, value: [motor]}", "in compares one value with each listed one"),
    ("{field: customer.product_lines, op: eq, value: motor}", "product_lines is a list of text; eq needs a list"),
    ("{field: customer.product_lines, op: ge, value: motor}", "its values have no order"),
    # names from a fixed set
    ("{field: customer.tier, op: eq, value: gld}", "unknown tier 'gld'"),
    ("{field: customer.tier, op: in, value: [gold, platnum]}", "unknown tier 'platnum'"),
    ("{field: customer.tier, op: lt, value: gold}", "customer.tier is text; lt does not apply"),
    ("{field: customer.preferred_channels, op: contains, value: fax}", "unknown channel 'fax'"),
    # event data (config/events.yaml: survey.answered has an int nps and a text comment)
    ('{field: event.data.nps, op: le, value: "6"}', "event.data.nps is a number; le needs a number"),
    ("{field: event.data.nps, op: in, value: [low]}", "event.data.nps is a number; in needs a list of numbers"),
]


@pytest.mark.parametrize(("condition", "words"), BAD, ids=[c for c, _ in BAD])
def test_a_value_of_the_wrong_type_is_refused_at_its_line(condition: str, words: str, tmp_path: Path) -> None:
    text, problems = _problems(condition, tmp_path)
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if row.strip() == f"- {condition}")
    assert any(p.line == line and words in p.message for p in problems), (line, [str(p) for p in problems])


GOOD = [
    "{field: customer.age, op: ge, value: 30}",
    "{field: customer.tier_score, op: lt, value: 0.5}",
    "{field: customer.tier_score, op: in, value: [1, 2.5]}",
    "{field: customer.birthday, op: gt, value: 1990-01-31}",
    '{field: customer.birthday, op: le, value: "1990-01-31"}',
    '{field: customer.last_active_at, op: lt, value: "2024-01-31T09:00:00+08:00"}',
    "{field: customer.last_active_at, op: within_last, value: 30d}",
    "{field: customer.birthday, op: not_in, value: [2000-02-29]}",
    "{field: customer.branch, op: eq, value: shanghai}",
    "{field: customer.branch, op: contains, value: hai}",
    '{field: customer.branch, op: in, value: ["101", sh]}',
    "{field: customer.consent_sms, op: eq, value: true}",
    "{field: customer.consent_sms, op: not_in, value: [false]}",
    "{field: customer.product_lines, op: contains, value: motor}",
    "{field: customer.product_lines, op: eq, value: [motor, health]}",
    "{field: customer.preferred_channels, op: contains, value: wechat}",
    "{field: customer.tier, op: in, value: [gold, diamond]}",
    "{field: customer.tier, op: ne, value: potential}",
    "{field: customer.birthday, op: missing}",
    "{field: customer.attributes.vip, op: gt, value: anything}",
    "{field: event.data.nps, op: le, value: 6}",
    "{field: event.data.comment, op: contains, value: refund}",
]


@pytest.mark.parametrize("condition", GOOD)
def test_a_value_of_the_right_type_passes(condition: str, tmp_path: Path) -> None:
    _, problems = _problems(condition, tmp_path)
    assert not problems, [str(p) for p in problems]


def test_every_shipped_journey_stays_valid() -> None:
    report = validation.validate()
    assert report.ok, [str(p) for p in report.problems]
    assert report.journeys


KIND_VALUES: dict[str, list[Any]] = {
    "int": [3, -1, 2.5], "float": [0.5, 7], "str": ["gold", ""], "bool": [True, False],
    # ISO text is text too; a date field's taking it is in GOOD.
    "date": [date(2024, 1, 31)], "datetime": [datetime(2024, 1, 31, 9, 0)], "list": [["a", "b"], []],
}


@pytest.mark.parametrize("kind", sorted(KIND_VALUES))
def test_values_of_a_kind_pass_exactly_on_fields_of_that_kind(kind: str) -> None:
    """Differential: a value of one kind passes eq on a field of the same kind (dates and datetimes
    take each other's values, numbers of both kinds) and is refused on every other kind."""
    same = {"int": {"int", "float"}, "float": {"int", "float"}, "date": {"date", "datetime"},
            "datetime": {"date", "datetime"}}.get(kind, {kind})
    for value in KIND_VALUES[kind]:
        for field_kind in KIND_VALUES:
            refused = list(leaf_problems("x.y", field_kind, "eq", value, TIERS))
            assert (not refused) == (field_kind in same), (value, field_kind, refused)


def test_a_misspelt_agent_outcome_is_refused_at_its_value(tmp_path: Path) -> None:
    """``value: no_anwser`` on task.completed's outcome never matched, and validate said nothing."""
    text = """\
id: missed-call
name: 未接通 / Missed call
category: service
entry: {schedule: {cron: "0 10 1 * *"}}
steps:
  - id: call
    task: {queue: gold_callback, due_within: 2d}
  - id: outcome
    wait_for:
      event: task.completed
      timeout: 7d
      when: {field: event.data.outcome, op: in, value: [no_answer, no_anwser]}
"""
    path = tmp_path / "missed-call.yaml"
    path.write_text(text, encoding="utf-8")
    loaded, problems = validation.validate_journey_file(path, ROOT / "templates")
    assert loaded is None
    assert [(p.line, p.column) for p in problems] == [(12, 68)], problems
    assert problems[0].message.startswith("unknown outcome 'no_anwser': event.data.outcome holds reached, no_answer")
    path.write_text(text.replace(", no_anwser", ""), encoding="utf-8")
    loaded, problems = validation.validate_journey_file(path, ROOT / "templates")
    assert problems == [] and loaded is not None
