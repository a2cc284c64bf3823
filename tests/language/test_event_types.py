"""Event types as data (config/events.yaml): the 15 built-in types live there, a new type needs
no code, journeys are checked against it, and a broken file is reported and never empties the
catalogue in force."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language import catalogue, event_types, rendering

ROOT = Path(__file__).resolve().parents[2]
BUILT_IN = ("app.login", "survey.answered", "complaint.filed", "complaint.resolved", "claim.filed", "claim.settled",
            "policy.renewed", "policy.lapsed", "churn.warning", "tier.changed", "tier.adjustment", "message.replied",
            "message.opted_out", "task.completed", "task.escalated")

JOURNEY = """\
id: parking
name: Parking
category: service
entry:
  event:
    type: {type}
    when: {{field: event.data.{field}, op: le, value: 3}}
steps:
  - id: done
    exit: {{}}
"""


def validate(tmp_path: Path, event_type: str, field: str) -> tuple[int, str, Path]:
    path = tmp_path / "parking.yaml"
    path.write_text(JOURNEY.format(type=event_type, field=field), encoding="utf-8")
    result = CliRunner().invoke(build_app(), ["validate", str(path)])
    return result.exit_code, result.output, path


def test_the_built_in_types_are_data() -> None:
    types = event_types.current()
    assert set(BUILT_IN) < set(types)
    assert all(types[t].description for t in types)
    assert catalogue.EVENT_TYPES["survey.answered"] == {"survey": "str", "nps": "int", "csat": "int",
                                                        "comment": "str"}
    source = (ROOT / "engine" / "language" / "catalogue.py").read_text(encoding="utf-8")
    assert '"survey.answered"' not in source  # no second list in code


def test_a_new_type_needs_no_code(tmp_path: Path, config: Path) -> None:
    assert validate(tmp_path, "parking.expiring", "hours_left")[0] == 1
    with (config / "events.yaml").open("a", encoding="utf-8") as f:
        f.write("parking.expiring:\n  description: A parking permit expires.\n  fields: {hours_left: int}\n")
    code, output, _ = validate(tmp_path, "parking.expiring", "hours_left")
    assert code == 0, output


@pytest.mark.parametrize(("event_type", "field", "words"), [
    ("vehicle.inspection_du", "days_left", "unknown event type 'vehicle.inspection_du' (did you mean "
                                           "'vehicle.inspection_due'?)"),
    ("vehicle.inspection_due", "days_lft", "unknown field 'event.data.days_lft' for event vehicle.inspection_due: "
                                           "known data fields are days_left, plate"),
])
def test_journeys_are_checked_against_the_file(tmp_path: Path, event_type: str, field: str, words: str) -> None:
    code, output, path = validate(tmp_path, event_type, field)
    assert code == 1
    assert any(line.startswith(f"{path}:") and words in line for line in output.splitlines()), output


@pytest.mark.parametrize(("text", "line", "words"), [
    ("bad type name:\n  description: x\n", 1, "'bad type name' is not a valid name"),
    ("x.y:\n  description: d\n  fields: {a: integer}\n", 3, "'integer' is not allowed"),
    ("x.y:\n  description: d\n  fields: {a: int}\n  required: [b]\n", 4, "required field 'b'"),
    ("x.y:\n  description: d\n  fields: {a: str}\n  words:\n    b: tier\n", 5, "words are given for 'b'"),
    ("x.y:\n  description: d\n  fields: {a: str}\n  words:\n    a: tiers\n", 5, "is not allowed"),
    ("x.y:\n  description: d\n  fields: {a: str}\n  words:\n    a:\n      hi: {zh-CN: 高}\n", 6, "en"),
])
def test_a_broken_file_is_reported_and_the_last_good_types_stay(tmp_path: Path, config: Path, text: str,
                                                                 line: int, words: str) -> None:
    before = dict(event_types.current())
    (config / "events.yaml").write_text(text, encoding="utf-8")
    code, output, _ = validate(tmp_path, "app.login", "session_seconds")
    assert code == 1
    assert any(row.startswith(f"{config / 'events.yaml'}:{line}:") for row in output.splitlines()), output
    assert words in output or "is not a valid" in output, output
    assert event_types.current() == before


@pytest.mark.parametrize(("locale", "said", "codes"), [
    ("zh-CN", ["投诉类别：理赔", "严重程度：高", "渠道：客服热线"], ["claims", "high", "hotline"]),
    ("en", ["Category: Claims", "severity: High", "source: Hotline"], ["claims", "high", "hotline"]),
])
def test_a_call_script_says_an_events_coded_values_in_words(locale: str, said: list[str], codes: list[str]) -> None:
    """The complaint script read the event's codes out to the agent ("严重程度：high"); event.words.* gives the words
    config/events.yaml declares, in the script's language, through the same context every render uses."""
    ctx = rendering.sample_context(locale)
    event = rendering.EventView("complaint.filed", {"category": "claims", "severity": "high", "source": "hotline",
                                                    "text": "投诉"})
    script = rendering.render_task_script("complaint_response", dataclasses.replace(ctx, event=event), locale=locale,
                                          root=ROOT / "templates")
    first = script.splitlines()[1]
    assert all(words in first for words in said), first
    assert not any(code in first for code in codes), first
    tiers = rendering.EventView("tier.changed", {"from_tier": "gold", "to_tier": "silver", "direction": "down"})
    script = rendering.render_task_script("tier_downgrade_callback", dataclasses.replace(ctx, event=tiers),
                                          locale=locale, root=ROOT / "templates")
    assert ("黄金 → 白银" if locale == "zh-CN" else "from Gold to Silver") in script, script
    # A value the file gives no word for is shown as given; a field the type lacks is refused by validate.
    odd = rendering.EventView("complaint.filed", {"category": "parking", "severity": "high", "source": "hotline"})
    script = rendering.render_task_script("complaint_response", dataclasses.replace(ctx, event=odd), locale=locale,
                                          root=ROOT / "templates")
    assert "parking" in script
