"""`journeys validate` on the configuration files: every problem of a file in one pass, each at the
line of the value at fault (not at the first line of the file or of its mapping), cross-references
between the files checked, and an invalid delivery file reported instead of ending in a traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from engine.cli import build_app

runner = CliRunner()


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


def rejected(edited: dict[Path, str], *expected: tuple[str, ...]) -> None:
    """``journeys validate`` fails on the ``edited`` files (path → its text now) and names each expected
    problem, (needle, *words): in the file whose text holds the needle, at the needle's line."""
    code, lines = validate()
    assert code == 1
    for needle, *words in expected:
        [path] = [path for path, text in edited.items() if needle in text]
        problem(lines, path.name, line_of(edited[path], needle), *words)


def test_tiers_every_problem_at_its_value(config: Path) -> None:
    tiers = config / "tiers.yaml"
    text = edit(tiers, ("  basic: 0.10 ", "  basic: 0.20 "), ("  gold: 50", "  gold: 75"),
                ("  potential: 0\n", "  potential: 0\n  bronze: 3\n"))
    rejected({tiers: text}, ("weights:", "weights must add up to 1, not 1.1"),
             ("  gold: 75", "gold (75) is not below platinum (70)"), ("  bronze: 3", "unknown tier 'bronze'"))


def test_tiers_a_bad_field_does_not_hide_the_whole_file_checks(config: Path) -> None:
    tiers = config / "tiers.yaml"
    text = edit(tiers, ("window: 90d", "window: 90x"), ("  gold: 50", "  gold: 75"))
    rejected({tiers: text}, ("window: 90x", "bad duration '90x'"), ("  gold: 75", "thresholds must fall strictly"))


def test_tiers_notify_queue_must_be_a_declared_queue(config: Path) -> None:
    tiers = config / "tiers.yaml"
    text = edit(tiers, ("notify_queue: ops\n  gold:", "notify_queue: opz\n  gold:"))
    rejected({tiers: text}, ("notify_queue: opz", "unknown queue 'opz'", "did you mean 'ops'"))


def test_delivery_problems_at_their_lines_and_no_traceback(config: Path) -> None:
    delivery = config / "delivery.yaml"
    text = edit(delivery, ("default_timezone: Asia/Shanghai", "default_timezone: Asia/Shanghia"),
                ("  email: 500\n", "  email: 500\n  fax: 3\n"), ("max_attempts: 5", "max_attempts: 0"))
    rejected({delivery: text}, ("default_timezone:", "unknown time zone 'Asia/Shanghia'"),
             ("  fax: 3", "unknown channel 'fax'"), ("max_attempts: 0", "'max_attempts'", "greater than or equal to 1"))


def test_queues_every_problem_at_its_value(config: Path) -> None:
    queues = config / "queues.yaml"
    text = edit(queues, ('  end: "18:00"', '  end: "08:00"'), ("task_types: {}", "task_types:\n  Bad/Key/x: {}"))
    rejected({queues: text}, ('  end: "08:00"', "end (08:00) must come after start (09:00)"),
             ("Bad/Key/x", "task type 'Bad/Key/x'"))


def test_work_calendar_and_event_types_at_their_values(config: Path) -> None:
    calendar, events = config / "work_calendar.yaml", config / "events.yaml"
    edited = {calendar: edit(calendar, ("years: {}", (
        "years:\n  2027:\n    holidays:\n      - name: national_day\n"
        "        from: 2027-10-07\n        to: 2027-10-01"))),
              events: edit(events, ("  fields: {platform: str, session_seconds: int}",
                                    "  fields: {platform: str, session_seconds: int}\n"
                                    "  required: [platform, platfrom]"))}
    rejected(edited, ("to: 2027-10-01", "'to' (2027-10-01) is before 'from'"),
             ("required: [platform, platfrom]", "required field 'platfrom' is not one of the fields"))


def test_queues_field_errors_do_not_hide_the_file_checks(config: Path) -> None:
    """A queue's bad outcome (its list left empty once set aside) and bad clock still let the
    task-type keys be checked."""
    queues = config / "queues.yaml"
    text = edit(queues, ("    outcomes: [resolved]\n    clock: business\n",
                         "    outcomes: [resolvd]\n    clock: bizness\n"),
                ("task_types: {}", "task_types:\n  Bad/Key/x: {}"))
    rejected({queues: text}, ("outcomes: [resolvd]", "unknown outcome 'resolvd'"),
             ("clock: bizness", "'bizness' is not allowed"), ("Bad/Key/x", "task type 'Bad/Key/x'"))


def test_delivery_needs_an_opt_out_keyword_and_none_blank(config: Path) -> None:
    # With none, or only blank ones, a customer's reply "TD" withdrew nothing, while the footer invites it.
    delivery = config / "delivery.yaml"
    original = delivery.read_text(encoding="utf-8")
    text = edit(delivery, ("opt_out_keywords: [TD, 退订, STOP, unsubscribe]", "opt_out_keywords: []"))
    rejected({delivery: text}, ("opt_out_keywords: []", "'opt_out_keywords'", "at least 1 item"))
    delivery.write_text(original, encoding="utf-8")
    text = edit(delivery, ("opt_out_keywords: [TD, 退订, STOP, unsubscribe]", 'opt_out_keywords: [TD, " "]'))
    rejected({delivery: text}, ('opt_out_keywords: [TD, " "]', "an opt-out keyword is blank"))
