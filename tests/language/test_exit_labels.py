"""An exit step's ``label``: the words of its reason, 中文 / English like the journey's name. ``journeys validate``
refuses a label that cannot be shown (empty, too long, two lines, an empty half) or that words one reason two
ways, at the label's line; every exit of the shipped journeys has words in both languages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language.bilingual import halves
from engine.language.journey_model import EXIT_LABEL_MAX
from engine.language.journey_schema import journey_schema
from engine.language.validation import validate

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "journeys" / "renewal-reminder.yaml"
RENEWED = "    exit: {reason: renewed, label: 已续保 / Renewed}"
NOT_RENEWED = "    exit: {reason: not_renewed, label: 未续保 / Not renewed}"
runner = CliRunner()


def _validate(tmp_path: Path, text: str, name: str = SHIPPED.name) -> tuple[int, str, Path]:
    path = tmp_path / "journeys" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(build_app(), ["validate", str(path)])
    return result.exit_code, result.output, path


def _line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def _refused_once_at(tmp_path: Path, text: str, needle: str, words: str, name: str = SHIPPED.name) -> None:
    """validate refuses ``text`` (the file ``name``) with one problem, at the line holding ``needle``, saying
    ``words``."""
    code, output, path = _validate(tmp_path, text, name)
    assert code == 1, output
    problems = [line for line in output.splitlines() if line.startswith(f"{path}:")]
    assert len(problems) == 1, output
    assert problems[0].startswith(f"{path}:{_line(text, needle)}:"), output
    assert words in problems[0], output


# What a label that cannot be shown is refused for (engine.language.bilingual.checked_label, shared by exits and
# split variants): (how the label is written, given its two halves and its upper bound; what the problem says).
LABEL_CASES_IDS = ["empty", "blank", "too long", "two lines", "no English", "no Chinese", "a number"]


def refused_labels(owner: str, chinese: str, english: str, most: int) -> list[tuple[str, str]]:
    return [
        ('label: ""', f"{owner}'s label may not be empty"),
        ('label: "   "', f"{owner}'s label may not be empty"),
        (f"label: {chinese[0] * (most + 1)}", f"at most {most} characters, not {most + 1}"),
        (f'label: "{chinese}\\n/ {english}"', f"{owner}'s label is one line"),
        (f'label: "{chinese} /"', "empty half"),
        (f'label: "/ {english}"', "empty half"),
        ("label: 12", "string"),
    ]


@pytest.mark.parametrize(("written", "words"), refused_labels("an exit", "已续保", "Renewed", EXIT_LABEL_MAX),
                         ids=LABEL_CASES_IDS)
def test_a_label_that_cannot_be_shown_is_refused_at_its_line(tmp_path: Path, written: str, words: str) -> None:
    base = SHIPPED.read_text(encoding="utf-8")
    assert RENEWED in base, "the shipped file changed: update the fixture"
    text = base.replace(RENEWED, "    exit: {reason: renewed, " + written + "}")
    _refused_once_at(tmp_path, text, "reason: renewed", words)


def test_one_reason_worded_two_ways_is_refused_at_the_second(tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8").replace(NOT_RENEWED, "    exit: {reason: renewed, label: 续保了 / Done}")
    code, output, path = _validate(tmp_path, text)
    assert code == 1, output
    second = _line(text, "label: 续保了")
    assert f"{path}:{second}:" in output, output
    assert "exit reason 'renewed' is labelled '已续保 / Renewed' at step 'renewed': one reason, one label" in output


def test_a_label_of_one_part_and_the_same_label_twice_are_taken(tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8").replace(RENEWED, "    exit: {reason: renewed, label: Renewed}")
    text = text.replace(NOT_RENEWED, "    exit: {reason: renewed, label: Renewed}")
    code, output, _ = _validate(tmp_path, text)
    assert code == 0, output


def test_every_exit_of_the_shipped_journeys_has_words_in_both_languages() -> None:
    report = validate()
    assert report.ok, [str(p) for p in report.problems]
    exits = [(loaded.journey.id, step) for loaded in report.journeys for step in loaded.journey.steps if step.exit]
    assert len(exits) > 30
    for journey_id, step in exits:
        assert step.exit is not None
        assert_in_both_languages(step.exit.label, (journey_id, step.id))


def assert_in_both_languages(label: str | None, where: object) -> None:
    """``label`` (of ``where``) is 中文 / English: Chinese words with no code in them, then English words."""
    assert label, where
    both = halves(label)
    assert both is not None, (where, label)
    zh, en = both
    assert re.search(r"[\u4e00-\u9fff]", zh) and not re.search(r"[A-Za-z_]", zh), (where, zh)
    assert re.fullmatch(r"[A-Z][A-Za-z ,'-]+", en), (where, en)


def test_the_schema_tells_editors_about_the_label() -> None:
    label = journey_schema()["$defs"]["Exit"]["properties"]["label"]
    assert "中文 / English" in label["description"]
    assert label["examples"] == ["已续保 / Renewed"]


@pytest.mark.parametrize(("written", "words"), [
    (f"reason: {'r' * 65}", "at most 64 characters"),
    ('reason: "renewed on time"', "use lowercase letters, digits"),
    ("reason: Renewed", "use lowercase letters, digits"),
], ids=["longer than its column", "a sentence", "capitals"])
def test_a_reason_that_is_not_a_code_is_refused_at_its_line(tmp_path: Path, written: str, words: str) -> None:
    """The reason lands in a 64-character column and reports count by it: refused when validated,
    never found only when the planner writes it (PostgreSQL would refuse the row mid-plan)."""
    base = SHIPPED.read_text(encoding="utf-8")
    assert RENEWED in base, "the shipped file changed: update the fixture"
    text = base.replace(RENEWED, "    exit: {" + written + ", label: 已续保 / Renewed}")
    _refused_once_at(tmp_path, text, "label: 已续保", words)
