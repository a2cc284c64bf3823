"""The 17 mistakes new journey authors make most, each placed into a valid journey: ``journeys
validate`` rejects the file with a message that says what is wrong and what would be right, at the
file and line (and for template variables the column) where the author has to look. The JSON
Schema, for the mistakes an editor can see, flags them too; and one file with several mistakes
gets all of them in one pass."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language.journey_schema import journey_schema

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

BASE = """\
id: mistakes-renewal
name: 续保提醒 / Renewal reminder
category: service
audience:
  tiers: [gold, silver]
entry:
  date: {anchor: policy.expiry_date, offset: -30d, at: "10:00"}
steps:
  - id: remind
    send:
      channels: [wechat, sms]
      template: renewal_reminder
  - id: wait_renewal
    wait_for:
      event: policy.renewed
      when: {field: event.data.policy_id, op: exists}
      timeout: 10d
      on_event: done
      on_timeout: check
  - id: check
    branch:
      cases:
        - when: {field: customer.tier, op: eq, value: gold}
          goto: call
      otherwise: remind_again
  - id: call
    task: {queue: renewal, priority: high, due_within: 2d}
    next: done
  - id: remind_again
    wait: {until: {anchor: policy.expiry_date, offset: -3d, at: "10:00"}}
  - id: last
    send: {channels: [sms], template: renewal_note}
  - id: done
    exit: {reason: renewed}
"""

# Applied with the mistake that drops the policy: a wait until a policy date would be rejected first.
POLICY_WAIT = '|wait: {until: {anchor: policy.expiry_date, offset: -3d, at: "10:00"}}'
WORKING_DAY_WAIT = "|wait: {until: next_working_day}"
NOTE = "Hi {{ customer.name }}, your policy ends on {{ policy.expiry_date }}."

# (name, old text, new text, file at fault ("journey" or a template file), marker of the line,
#  words the message must hold, whether the JSON Schema flags it too)
Mistake = tuple[str, str, str, str, str, list[str], bool]
MISTAKES: list[Mistake] = [
    ("typo in a key", "category: service", "categroy: service", "journey", "categroy:",
     ["unknown field 'categroy'", "did you mean 'category'"], True),
    ("indentation", "      channels: [wechat, sms]\n      template: renewal_reminder",
     "    channels: [wechat, sms]\n    template: renewal_reminder", "journey", "    channels: [wechat, sms]",
     ["`channels` belongs under `send:`"], True),
    ("unclosed quote", "name: 续保提醒 / Renewal reminder", 'name: "续保提醒 / Renewal reminder', "journey",
     'name: "', ["unclosed quote"], False),
    ("tab", "  tiers: [gold, silver]", "\ttiers: [gold, silver]", "journey", "\ttiers",
     ["tab indents this line"], False),
    ("unknown template variable", NOTE, NOTE.replace("customer.name", "customer.nmae"), "sms.en.j2",
     "customer.nmae", ["undefined variable 'customer.nmae'", "did you mean 'customer.name'", "customer.name,"], False),
    ("policy in a journey without a policy",
     'date: {anchor: policy.expiry_date, offset: -30d, at: "10:00"}' + POLICY_WAIT,
     'schedule: {cron: "0 10 1 * *"}' + WORKING_DAY_WAIT, "sms.en.j2", "policy.expiry_date",
     ["undefined variable 'policy.expiry_date'", "no policy in scope", "its entry is a schedule"], False),
    ("wrong goto", "on_timeout: check", "on_timeout: chek", "journey", "on_timeout: chek",
     ["unknown step 'chek'", "did you mean 'check'"], False),
    ("unknown event", "event: policy.renewed", "event: policy.renewd", "journey", "event: policy.renewd",
     ["unknown event type 'policy.renewd'", "did you mean 'policy.renewed'"], True),
    ("unknown event field", "event.data.policy_id", "event.data.policyid", "journey", "event.data.policyid",
     ["unknown field 'event.data.policyid'", "policy_id"], False),
    ("bad duration", "timeout: 10d", "timeout: 10days", "journey", "timeout: 10days", ["bad duration '10days'"],
     True),
    ("bad time", 'offset: -3d, at: "10:00"', 'offset: -3d, at: "25:00"', "journey", '"25:00"',
     ["bad time of day '25:00'"], True),
    ("unknown channel", "channels: [wechat, sms]", "channels: [wechat, fax]", "journey", "channels: [wechat, fax]",
     ["unknown channel 'fax'"], True),
    ("unknown tier", "tiers: [gold, silver]", "tiers: [gold, silvr]", "journey", "tiers: [gold, silvr]",
     ["unknown tier 'silvr'", "did you mean 'silver'"], True),
    ("unknown queue", "queue: renewal,", "queue: renewals,", "journey", "queue: renewals",
     ["unknown queue 'renewals'", "did you mean 'renewal'"], True),
    ("unknown template", "template: renewal_reminder", "template: renewal_remider", "journey",
     "template: renewal_remider", ["unknown template 'renewal_remider'", "did you mean 'renewal_reminder'"], False),
    ("unknown anchor", "date: {anchor: policy.expiry_date,", "date: {anchor: policy.expiry,", "journey",
     "anchor: policy.expiry,", ["unknown anchor 'policy.expiry'", "did you mean 'policy.expiry_date'"], True),
    ("unknown operator", "op: eq, value: gold", "op: equals, value: gold", "journey", "op: equals",
     ["unknown operator 'equals'"], True),
]


def line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the text")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    templates = tmp_path / "templates"
    templates.mkdir()
    shutil.copytree(ROOT / "templates" / "renewal_reminder", templates / "renewal_reminder")
    note = templates / "renewal_note"
    note.mkdir()
    (note / "meta.yaml").write_text("description: renewal note\ncategory: service\n", encoding="utf-8")
    for locale in ("zh-CN", "en"):
        (note / f"sms.{locale}.j2").write_text(NOTE + "\n", encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(templates))
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "journeys").mkdir()
    return tmp_path


def validate(project: Path, text: str) -> tuple[int, str, Path]:
    path = project / "journeys" / "mistakes.yaml"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(build_app(), ["validate", str(path)])
    return result.exit_code, result.output, path


def rejected(project: Path, text: str, *expected: tuple[str, str]) -> str:
    """Validates the journey ``text``: rejected, with a problem for each (marker, word) that holds the word
    at the marker's line. Returns what the command printed."""
    code, output, path = validate(project, text)
    assert code == 1
    for marker, word in expected:
        assert any(line.startswith(f"{path}:{line_of(text, marker)}:") and word in line
                   for line in output.splitlines()), (word, output)
    return output


def test_the_base_journey_is_valid(project: Path) -> None:
    code, output, _ = validate(project, BASE)
    assert code == 0, output


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_mistake_is_named_at_its_line(project: Path, mistake: Mistake) -> None:
    _, old, new, where, marker, words, _ = mistake
    journey_text = BASE
    if where == "journey" or old not in NOTE:
        journey_text = BASE
        for one_old, one_new in zip(old.split("|"), new.split("|"), strict=True):
            assert one_old in BASE, f"fixture drifted: {one_old!r}"
            journey_text = journey_text.replace(one_old, one_new, 1)
    else:
        for locale in ("zh-CN", "en"):
            (project / "templates" / "renewal_note" / f"sms.{locale}.j2").write_text(NOTE.replace(old, new) + "\n")
    code, output, path = validate(project, journey_text)
    assert code == 1, output
    if where == "journey":
        at_fault, text = str(path), journey_text
    else:
        at_fault = str(project / "templates" / "renewal_note" / where)
        text = (project / "templates" / "renewal_note" / where).read_text(encoding="utf-8")
    problems = [line for line in output.splitlines() if line.startswith(f"{at_fault}:")]
    assert problems, output
    matching = [p for p in problems if all(word in p for word in words)]
    assert matching, output
    _, line, column, _ = matching[0].split(":", 3)
    assert int(line) == line_of(text, marker), output
    if where != "journey":  # a template variable is placed at its column too
        assert int(column) == text.splitlines()[int(line) - 1].index(marker) + 1, output
    assert "mistakes.yaml" in output  # the journey that sends it is rejected


def _schema_errors(text: str) -> list[Any]:
    data = yaml.safe_load(text)
    return list(jsonschema.Draft202012Validator(journey_schema()).iter_errors(data))


def test_the_schema_flags_what_an_editor_can_see(project: Path) -> None:
    assert _schema_errors(BASE) == []
    flagged = []
    for name, old, new, where, _, _, by_schema in MISTAKES:
        if where != "journey" or not by_schema:
            continue
        if _schema_errors(BASE.replace(old, new, 1)):
            flagged.append(name)
    expected = [m[0] for m in MISTAKES if m[6]]
    assert flagged == expected
    assert len(expected) == 10


def test_every_problem_of_a_file_in_one_pass(project: Path) -> None:
    """A wrong type (the model's), an unknown tier and a wrong goto (the project's), a bad step."""
    text = (BASE.replace("category: service", "category: service\npriority: high")
            .replace("tiers: [gold, silver]", "tiers: [gold, silvr]")
            .replace("on_timeout: check", "on_timeout: chek")
            .replace("due_within: 2d", "due_within: 2days"))
    rejected(project, text, ("priority: high", "priority"), ("tiers: [gold, silvr]", "unknown tier"),
             ("on_timeout: chek", "unknown step 'chek'"), ("due_within: 2days", "bad duration"))


def test_a_bad_value_does_not_hide_the_rest_of_its_step_or_entry(project: Path) -> None:
    """A bad duration is set aside on its own: the goto beside it in the same step and the policy
    condition that the date entry (with a bad offset) puts in scope are still checked."""
    text = (BASE.replace("offset: -30d", "offset: -30x")
            .replace("timeout: 10d", "timeout: 10x")
            .replace("on_timeout: check", "on_timeout: chek")
            .replace("  tiers: [gold, silver]\n",
                     "  tiers: [gold, silver]\n  when: {field: policy.renewed, op: eq, value: flase}\n"))
    output = rejected(project, text, ("offset: -30x", "bad duration '-30x'"), ("timeout: 10x", "bad duration '10x'"),
                      ("on_timeout: chek", "unknown step 'chek'"), ("value: flase", "not 'flase'"))
    # Nothing is said of the stand-ins (a stood-in duration, a placeholder entry or step).
    assert "salvaged" not in output and "not available here" not in output, output


def test_a_condition_of_the_wrong_shape_does_not_hide_the_rest_of_its_step(project: Path) -> None:
    """``op: in`` with one value (the model refuses the condition whole) and, in the same branch, a wrong
    goto and a value of the wrong type: before, the branch was set aside whole and only the first was said."""
    text = (BASE.replace("- when: {field: customer.tier, op: eq, value: gold}\n          goto: call",
                         "- when: {field: customer.tier, op: in, value: gold}\n          goto: cal\n"
                         "        - when: {field: customer.age, op: gt, value: \"30\"}\n          goto: call"))
    output = rejected(project, text, ("op: in, value: gold", "operator in takes a list value"),
                      ("goto: cal", "unknown step 'cal'"), ('value: "30"', "customer.age is a number"))
    assert "salvaged" not in output and "never reached" not in output, output
