"""Every number, date, moment and period the ``journeys`` command takes is bounded, and a value out of
its bounds is one line on stderr naming the option and what it takes, exit code 2, before any work
(engine/cli/arguments.py). Found by walking the command tree, so a command added later is held to it.

Before: ``dispatch --batch 100000000000000000000`` was taken, ``serve --port 99999`` and
``trace --touch 99999999999999999999`` ended in OverflowError tracebacks, ``purge --older-than
99999999999999999999y`` too, and ``plan --from 1900-01-01`` planned 126 years (48 s and half a
million touches for 300 customers)."""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from engine.cli import build_app
from engine.cli.arguments import Day, Moment, Retention, Whole
from store.clock import FIRST_YEAR, LAST_YEAR, utcnow
from store.migrate import upgrade
from store.retention import LONGEST_RETENTION

BOUNDED = (Whole, Moment, Day, Retention)
# What a number, date or period reads like in a text option's help: such an option must be bounded.
LOOKS_BOUNDED = re.compile(r"ISO 8601|YYYY|\bdate\b(?!-)|\bmoment\b|\bperiod\b|\bdays?\b|\bport\b|\bhow many\b",
                           re.IGNORECASE)


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))
        return
    for param in command.params:
        yield path, command, param


APP = build_app()
ROOT = typer.main.get_command(APP)
PARAMS = list(_walk(ROOT))


def _parser(param: Any) -> Any:
    return param.type_descriptor.parameter_info.parser


def _name(param: Any) -> str:
    return str(param.opts[0]) if param.param_type_name == "option" else str(param.name)


BOUNDED_PARAMS = [(path, command, param) for path, command, param in PARAMS if isinstance(_parser(param), BOUNDED)]


# What an option reads like when its command judges and records what it finds as of the moment: it
# must not reach past now (engine.cli.arguments.AS_OF_AHEAD).
LOOKS_AS_OF = re.compile(r"\bas of\b|\(default now\)", re.IGNORECASE)


def test_every_number_date_and_period_is_bounded() -> None:
    unbounded = []
    for path, _command, param in PARAMS:
        annotation = param.type_descriptor.annotation
        parser = _parser(param)
        if isinstance(parser, Moment) and LOOKS_AS_OF.search(param.help or "") and parser.ahead is None:
            unbounded.append(f"journeys {' '.join(path)} {_name(param)} (an 'as of' moment without a horizon)")
        if getattr(param, "is_flag", False) or isinstance(parser, BOUNDED):
            continue
        if annotation in (int, float, date, timedelta) or (
                annotation is str and LOOKS_BOUNDED.search(param.help or "")):
            unbounded.append(f"journeys {' '.join(path)} {_name(param)}")
    assert not unbounded, unbounded
    assert len(BOUNDED_PARAMS) >= 25  # the walk found the commands
    as_of = {f"{' '.join(p)} {_name(q)}" for p, _c, q in BOUNDED_PARAMS if getattr(_parser(q), "ahead", None)}
    assert {"retier --at", "tier-review --at", "churn-check --at", "report --now"} <= as_of


def _valid(param: Any) -> str:
    """A value the parameter takes, for the ones a command requires besides the one under test."""
    parser = _parser(param)
    if isinstance(parser, Whole):
        return str(parser.low)
    if isinstance(parser, Moment | Day):
        return "2026-12-01"
    if isinstance(parser, Retention):
        return "3y"
    choices = param.type_descriptor.choices
    return str(choices[0].value if hasattr(choices[0], "value") else choices[0]) if choices else "x"


def _args(path: tuple[str, ...], command: Any, target: Any, value: str) -> list[str]:
    options, arguments = [], []
    for param in command.params:
        if param is target:
            given = value
        elif param.required:
            given = _valid(param)
        else:
            continue
        if param.param_type_name == "option":
            options.append(f"{param.opts[0]}={given}")  # "=": a value may start with "-"
        else:
            arguments.append(given)
    return [*path, *options, "--", *arguments]


def _out_of_bounds(parser: Any) -> st.SearchStrategy[str]:
    if isinstance(parser, Whole):
        numbers = st.one_of(st.integers(max_value=parser.low - 1), st.integers(min_value=parser.high + 1))
        return st.one_of(numbers.map(str), st.just(str(10**20)), st.sampled_from(["", "ten", "1.5", "1e3", "9" * 5000]))
    if isinstance(parser, Moment | Day):
        outside = st.one_of(st.dates(max_value=date(FIRST_YEAR - 1, 12, 31)),
                            st.dates(min_value=date(LAST_YEAR + 1, 1, 1)))
        if isinstance(parser, Moment) and parser.ahead is not None:
            # Past now and its horizon, within the years: what only the horizon refuses.
            first = (utcnow() + parser.ahead).date() + timedelta(days=1)
            outside = st.one_of(outside, st.dates(min_value=first, max_value=date(LAST_YEAR, 12, 31)))
        texts = outside.map(date.isoformat)
        if isinstance(parser, Moment):
            texts = st.one_of(texts, outside.map(lambda d: f"{d.isoformat()}T23:59+08:00"))
        return st.one_of(texts, st.sampled_from(["soon", "2026-02-30"]))
    assert isinstance(parser, Retention)
    unit = st.sampled_from(sorted(LONGEST_RETENTION))
    too_long = unit.flatmap(lambda u: st.integers(min_value=LONGEST_RETENTION[u] + 1).map(lambda n: f"{n}{u}"))
    return st.one_of(too_long, st.sampled_from(["0d", "3 years", "-1y"]))


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated store for the module: a value let through would run its command against it, not
    fail for want of a schema (which also exits 2 in one line)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('bounds') / 'journeys.db'}"
    upgrade(url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JOURNEYS_DATABASE_URL", url)
        yield url


def _stored(url: str) -> list[str]:
    """Everything the store holds, as SQL: a refused command must leave it as it was."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return list(conn.iterdump())


def _refused(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize(("path", "command", "param"), BOUNDED_PARAMS,
                         ids=[f"{' '.join(p)} {_name(q)}" for p, _c, q in BOUNDED_PARAMS])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_value_out_of_bounds_is_one_line_naming_the_option(
    path: tuple[str, ...], command: Any, param: Any, data: st.DataObject, migrated: str, tmp_path: Path,
) -> None:
    parser = _parser(param)
    value = data.draw(_out_of_bounds(parser))
    before = _stored(migrated)
    with pytest.MonkeyPatch.context() as patch:
        # In an empty folder: a command's default output (demo's var/demo) would show up in it.
        work = Path(tempfile.mkdtemp(dir=tmp_path))
        patch.chdir(work)
        result = CliRunner().invoke(APP, _args(path, command, param, value))
    line = _refused(result)
    assert _stored(migrated) == before and not list(work.iterdir())  # nothing written
    assert line.startswith(f"{_name(param)} "), line
    if isinstance(parser, Whole):
        assert f"from {parser.low:,} to {parser.high:,}" in line, line


@given(low=st.integers(-(2**70), 2**70), width=st.integers(0, 2**70), data=st.data())
def test_a_whole_number_in_bounds_is_taken_as_written(low: int, width: int, data: st.DataObject) -> None:
    value = data.draw(st.integers(low, low + width))
    assert Whole(low, low + width)(f" {value} ") == value


def _plan(*args: str) -> Result:
    return CliRunner().invoke(APP, ["plan", *args])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(day=st.dates(date(1900, 1, 1), date(2199, 1, 1)), back=st.integers(93, 80000))
def test_a_plan_longer_than_a_quarter_is_refused(day: date, back: int, migrated: str) -> None:
    start = day - timedelta(days=back)
    if start.year < FIRST_YEAR:
        start = date(FIRST_YEAR, 1, 1) + timedelta(days=1)
    if (day - start).days <= 93:
        return
    line = _refused(_plan("--from", f"{start.isoformat()}T12:00", "--at", f"{day.isoformat()}T12:00", "--dry-run"))
    assert line.endswith("at most 92 at a time"), line


def test_without_from_a_plan_far_after_the_last_one_is_refused(db_url: str) -> None:
    assert _plan("--at", "2026-12-01T00:00+08:00").exit_code == 0  # a written run: its end is the cursor
    line = _refused(_plan("--at", "2199-12-31", "--dry-run"))
    assert line.startswith("--at 2199-12-31 is ") and "after the last plan ended" in line, line
    assert _plan("--at", "2027-03-02T00:00+08:00", "--dry-run").exit_code == 0  # 91 days on


def test_a_report_longer_than_a_year_is_refused(db_url: str) -> None:
    line = _refused(CliRunner().invoke(APP, ["report", "--from", "1900-01-01", "--to", "2199-01-01"]))
    # --to is the last day, included: 2199-01-01 is a day of the period.
    assert line == "--from 1900-01-01 --to 2199-01-01 spans 109,209 days: at most 366 at a time"


@pytest.mark.parametrize(("args", "start"), [
    (["nosuch"], "journeys: No such command 'nosuch'"),
    (["plan"], "journeys plan: Missing option '--at'"),
    (["import", "nonsense", "x.csv"], "journeys import: Invalid value for 'kind'"),
])
def test_other_usage_errors_are_one_line_too(args: list[str], start: str) -> None:
    line = _refused(CliRunner().invoke(APP, args))
    assert line.startswith(start) and line.endswith("--help)"), line


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(ROOT))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "journeys" for p, _c in COMMANDS])
def test_a_help_page_shows_a_flag_as_a_flag(path: tuple[str, ...], command: Any) -> None:
    """Typer gives a flag the type ``<bool>`` in its help, as if ``--dry-run`` took a value."""
    result = CliRunner().invoke(APP, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output, result.output
    flags = [p.opts[0] for p in command.params if getattr(p, "is_flag", False)]
    for flag in [*flags, "--help"]:
        assert re.search(rf"{re.escape(flag)}(\s*/\s*--no-\S+)?\s{{2,}}\S", result.output), (flag, result.output)
    assert len(COMMANDS) >= 40  # the walk found the commands


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.dates(date(LAST_YEAR, 1, 1), date(LAST_YEAR, 12, 31)), data=st.data())
def test_a_demo_running_past_the_years_is_refused_before_it_starts(start: date, data: st.DataObject,
                                                                   tmp_path: Path) -> None:
    """Each option in its bounds, the two together not: the demo had stopped on a traceback in 2200 after
    seeding, planning and sending the days before."""
    left = (date(LAST_YEAR, 12, 31) - start).days + 1  # the days a demo from start may run
    days = data.draw(st.integers(left + 1, 366))  # 2199 has 365 days: 366 from any day of it runs past
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "demo"
    result = CliRunner().invoke(APP, ["demo", "--start", start.isoformat(), "--days", str(days), "--customers", "1",
                                      "--out", str(out)])
    line = _refused(result)
    last = start + timedelta(days=days - 1)
    assert line == (f"--start {start.isoformat()} --days {days} ends on {last.isoformat()}: "
                    f"the last day must be in {LAST_YEAR} at the latest")
    assert not out.exists()
