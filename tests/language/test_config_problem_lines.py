"""`journeys validate` on the configuration files: every problem of a file in one pass, each at the
line of the value at fault (not at the first line of the file or of its mapping), cross-references
between the files checked, and an invalid delivery file reported instead of ending in a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture()
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(folder))
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def edit(path: Path, *changes: tuple[str, str]) -> str:
    text = path.read_text(encoding="utf-8")
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return text


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def validate() -> tuple[int, list[str]]:
    result = runner.invoke(build_app(), ["validate", "--no-cache"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, [line for line in result.output.splitlines() if ": warning:" not in line]


def problem(lines: list[str], file: str, line: int, *words: str) -> None:
    found = [x for x in lines if f"{file}:{line}:" in x and all(w in x for w in words)]
    assert found, (file, line, words, lines)


def test_tiers_every_problem_at_its_value(config: Path) -> None:
    text = edit(config / "tiers.yaml", ("  basic: 0.10 ", "  basic: 0.20 "), ("  gold: 50", "  gold: 75"),
                ("  potential: 0\n", "  potential: 0\n  bronze: 3\n"))
    code, lines = validate()
    assert code == 1
    problem(lines, "tiers.yaml", line_of(text, "weights:"), "weights must add up to 1, not 1.1")
    problem(lines, "tiers.yaml", line_of(text, "  gold: 75"), "gold (75) is not below platinum (70)")
    problem(lines, "tiers.yaml", line_of(text, "  bronze: 3"), "unknown tier 'bronze'")


def test_tiers_a_bad_field_does_not_hide_the_whole_file_checks(config: Path) -> None:
    text = edit(config / "tiers.yaml", ("window: 90d", "window: 90x"), ("  gold: 50", "  gold: 75"))
    code, lines = validate()
    assert code == 1
    problem(lines, "tiers.yaml", line_of(text, "window: 90x"), "bad duration '90x'")
    problem(lines, "tiers.yaml", line_of(text, "  gold: 75"), "thresholds must fall strictly")


def test_tiers_notify_queue_must_be_a_declared_queue(config: Path) -> None:
    text = edit(config / "tiers.yaml", ("notify_queue: ops\n  gold:", "notify_queue: opz\n  gold:"))
    code, lines = validate()
    assert code == 1
    problem(lines, "tiers.yaml", line_of(text, "notify_queue: opz"), "unknown queue 'opz'", "did you mean 'ops'")


def test_delivery_problems_at_their_lines_and_no_traceback(config: Path) -> None:
    text = edit(config / "delivery.yaml", ("default_timezone: Asia/Shanghai", "default_timezone: Asia/Shanghia"),
                ("  email: 500\n", "  email: 500\n  fax: 3\n"), ("max_attempts: 5", "max_attempts: 0"))
    code, lines = validate()
    assert code == 1
    problem(lines, "delivery.yaml", line_of(text, "default_timezone:"), "unknown time zone 'Asia/Shanghia'")
    problem(lines, "delivery.yaml", line_of(text, "  fax: 3"), "unknown channel 'fax'")
    problem(lines, "delivery.yaml", line_of(text, "max_attempts: 0"), "'max_attempts'", "greater than or equal to 1")


def test_queues_every_problem_at_its_value(config: Path) -> None:
    text = edit(config / "queues.yaml", ('  end: "18:00"', '  end: "08:00"'),
                ("task_types: {}", "task_types:\n  Bad/Key/x: {}"))
    code, lines = validate()
    assert code == 1
    problem(lines, "queues.yaml", line_of(text, '  end: "08:00"'), "end (08:00) must come after start (09:00)")
    problem(lines, "queues.yaml", line_of(text, "Bad/Key/x"), "task type 'Bad/Key/x'")


def test_work_calendar_and_event_types_at_their_values(config: Path) -> None:
    calendar = edit(config / "work_calendar.yaml", ("years: {}", (
        "years:\n  2027:\n    holidays:\n      - name: national_day\n"
        "        from: 2027-10-07\n        to: 2027-10-01")))
    events = edit(config / "events.yaml", ("  fields: {platform: str, session_seconds: int}",
                                           "  fields: {platform: str, session_seconds: int}\n"
                                           "  required: [platform, platfrom]"))
    code, lines = validate()
    assert code == 1
    problem(lines, "work_calendar.yaml", line_of(calendar, "to: 2027-10-01"), "'to' (2027-10-01) is before 'from'")
    problem(lines, "events.yaml", line_of(events, "required: [platform, platfrom]"),
            "required field 'platfrom' is not one of the fields")


def test_queues_field_errors_do_not_hide_the_file_checks(config: Path) -> None:
    """A queue's bad outcome (its list left empty once set aside) and bad clock still let the
    task-type keys be checked."""
    text = edit(config / "queues.yaml", ("    outcomes: [resolved]\n    clock: business\n",
                                         "    outcomes: [resolvd]\n    clock: bizness\n"),
                ("task_types: {}", "task_types:\n  Bad/Key/x: {}"))
    code, lines = validate()
    assert code == 1
    problem(lines, "queues.yaml", line_of(text, "outcomes: [resolvd]"), "unknown outcome 'resolvd'")
    problem(lines, "queues.yaml", line_of(text, "clock: bizness"), "'bizness' is not allowed")
    problem(lines, "queues.yaml", line_of(text, "Bad/Key/x"), "task type 'Bad/Key/x'")
