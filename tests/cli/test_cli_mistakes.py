"""Every command that writes a file or takes a period refuses a mistake in them with one line on stderr
and exit code 2, before any work and without a traceback (engine/cli/arguments.py)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from engine.cli import build_app

UNWRITABLE_FOLDER = Path("/proc")  # exists, looks writable to root, takes no new files


def _refused(result: Result) -> str:
    """The one line a refused command printed; fails the test on a traceback or another exit code."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def _run(*args: str) -> Result:
    return CliRunner().invoke(build_app(), list(args))


@pytest.mark.parametrize("args", [
    ["report", "--from", "2026-11-01", "--to", "2026-12-01", "--out", "{file}"],
    ["report", "--from", "2026-11-01", "--to", "2026-12-01", "--out", "{unwritable}/x"],
    ["simulate", "--from", "2026-12-01", "--to", "2026-12-02", "--chart", "{missing}/x.png"],
    ["simulate", "--from", "2026-12-01", "--to", "2026-12-02", "--chart", "{unwritable}/x.png"],
    ["simulate", "--from", "2026-12-01", "--to", "2026-12-02", "--chart", "{folder}"],
    ["simulate", "--from", "2026-12-01", "--to", "2026-12-02", "--chart", "{folder}/chart.txt"],
    ["simulate", "--from", "2026-12-01", "--to", "2026-12-02", "--chart", "{folder}/chart"],
    ["export", "customers", "--out", "{missing}/x.csv"],
    ["export", "customers", "--out", "{unwritable}/x.csv"],
    ["export", "customers", "--out", "{folder}"],
    ["import", "customers", "{csv}", "--rejects", "{unwritable}/r.csv"],
    ["import", "customers", "{csv}", "--rejects", "{missing}/r.csv"],
    ["demo", "--out", "{file}"],
])
def test_an_output_path_that_cannot_be_written_is_refused_first(args: list[str], db_url: str, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("x")
    csv = tmp_path / "customers.csv"
    csv.write_text("external_id,name\nC1,Ann\n")
    places = {"missing": str(tmp_path / "no-such-folder" / "below"), "file": str(a_file),
              "unwritable": str(UNWRITABLE_FOLDER), "folder": str(tmp_path), "csv": str(csv)}
    option = next(a for a in args if "{" in a and a != "{csv}")
    line = _refused(_run(*(a.format(**places) for a in args)))
    assert line.startswith(args[args.index(option) - 1] + ":"), line
    assert not (tmp_path / "no-such-folder").exists()  # nothing made on the way


def test_an_unwritable_output_imports_nothing(db_url: str, tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from store.db import session_scope
    from store.models import Customer

    csv = tmp_path / "customers.csv"
    csv.write_text("external_id,name\nC1,Ann\nC2,\n")
    _refused(_run("import", "customers", str(csv), "--rejects", str(UNWRITABLE_FOLDER / "r.csv")))
    with session_scope(db_url) as session:
        assert session.execute(select(func.count()).select_from(Customer)).scalar_one() == 0


def _period_args(command: str, first: str, last: str) -> list[str]:
    if command == "plan":
        return ["plan", "--from", first, "--at", last, "--dry-run"]
    return [command, "--from", first, "--to", last]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(["report", "simulate", "plan"]), day=st.dates(date(2000, 1, 1), date(2100, 1, 1)),
       back=st.integers(min_value=1, max_value=4000))
def test_a_reversed_period_is_refused(command: str, day: date, back: int, db_url: str) -> None:
    # --to is the last day, included: only a day before --from reverses it.
    first, last = day.isoformat(), (day - timedelta(days=back)).isoformat()
    line = _refused(_run(*_period_args(command, first, last)))
    assert last in line and first in line and "must end after it starts" in line


@pytest.mark.parametrize(("command", "first", "last"), [
    ("report", "2026-12-01T00:00", "2026-12-01T00:00"),  # a moment ends the period: the same one, empty
    ("plan", "2026-12-01T10:00+08:00", "2026-12-01T02:00Z"),  # the same moment, written two ways
])
def test_an_empty_period_is_refused(command: str, first: str, last: str, db_url: str) -> None:
    assert "must end after it starts" in _refused(_run(*_period_args(command, first, last)))


@pytest.mark.parametrize(("command", "first", "last"), [
    ("report", "2026-11-01", "2026-11-30"),
    ("report", "2026-12-01", "2026-12-01"),  # one whole day, as simulate reads it
    ("simulate", "2026-12-01", "2026-12-01"),  # one whole day
    ("plan", "2026-11-30T00:00", "2026-12-01T00:00"),
])
def test_a_period_in_order_runs(command: str, first: str, last: str, db_url: str) -> None:
    result = _run(*_period_args(command, first, last))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args", [
    ["simulate", "--from", "2026-12-01", "--to", "2026-12-02"],
    ["report", "--from", "2026-11-01", "--to", "2026-12-01"],
    ["explain", "C1", "--at", "2026-12-01"],
])
def test_a_database_without_its_schema_is_named_in_one_line(
    args: list[str], sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Through ``main``, as the installed command runs: CliRunner would not show what reaches the shell."""
    from engine.cli import main

    monkeypatch.setenv("JOURNEYS_DATABASE_URL", sqlite_url)  # never upgraded
    monkeypatch.setattr("sys.argv", ["journeys", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("the database has no schema yet") and line.endswith("run `journeys db upgrade` first")


@pytest.mark.parametrize(("args", "option"), [
    (["seed", "--customers", "1", "--as-of", "1800-01-01"], "--as-of"),
    (["seed", "--customers", "1", "--as-of", "2300-01-01"], "--as-of"),
    (["seed", "--customers", "1", "--as-of", "2026-02-30"], "--as-of"),
    (["demo", "--start", "1800-01-01", "--out", "{tmp}/demo"], "--start"),
])
def test_a_day_outside_the_years_taken_is_refused(args: list[str], option: str, db_url: str, tmp_path: Path) -> None:
    line = _refused(_run(*(a.format(tmp=tmp_path) for a in args)))
    assert line.startswith(f"{option} "), line
    assert "is outside the years 1900–2199" in line or "is not a date (YYYY-MM-DD)" in line


def test_a_folder_given_as_the_import_file_is_called_a_folder(db_url: str, tmp_path: Path) -> None:
    result = _run("import", "customers", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "is a folder" in result.stderr and "no such file" not in result.stderr, result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("url", "start"), [
    ("sqlite:///{tmp}/not-a-db.db", "the database file is not an SQLite database"),
    ("nosuchdialect://x", "JOURNEYS_DATABASE_URL is not a database URL"),
    ("not a url", "JOURNEYS_DATABASE_URL is not a database URL"),
])
def test_a_database_url_that_cannot_serve_is_named_in_one_line(
    url: str, start: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from engine.cli import main

    (tmp_path / "not-a-db.db").write_text("these are not the pages of an SQLite file\\n" * 20)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", url.format(tmp=tmp_path))
    monkeypatch.setattr("sys.argv", ["journeys", "report", "--from", "2026-11-01", "--to", "2026-12-01"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(start), line


def test_an_unknown_assume_tz_names_the_option(db_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "customers.csv"
    csv.write_text("external_id,name\nC1,Ann\n")
    line = _refused(_run("import", "customers", str(csv), "--assume-tz", "Mars/Olympus"))
    assert line.startswith("--assume-tz: unknown time zone 'Mars/Olympus'"), line
