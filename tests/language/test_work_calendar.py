"""The PRC work calendar: the file ops edit, the chinese-calendar package and the statutory rule,
their order, the working-day API, and `journeys validate` placing each mistake at its line."""

from __future__ import annotations

import shutil
import textwrap
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar
import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language import work_calendar
from engine.language.work_calendar import (
    PACKAGE_YEARS,
    WorkCalendar,
    WorkCalendarError,
    load_work_calendar,
    statutory_days_off,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "work_calendar.yaml"
# A year no source has a notice for (the package would need eighty more yearly releases).
UNPUBLISHED = 2099


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "work_calendar.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _calendar(tmp_path: Path, text: str) -> WorkCalendar:
    config, problems = load_work_calendar(_write(tmp_path, text))
    assert config is not None, problems
    return WorkCalendar(config)


def _listed_year(tmp_path: Path, year: int, holiday: str, *, working_days: str | None = None) -> WorkCalendar:
    """A calendar whose file lists ``year`` alone, with one holiday range and any make-up working days."""
    extra = f"\n    working_days: {working_days}" if working_days is not None else ""
    return _calendar(tmp_path, f"years:\n  {year}:\n    holidays:\n      - {holiday}{extra}\n")


def _days(year: int) -> list[date]:
    first = date(year, 1, 1)
    return [first + timedelta(days=i) for i in range((date(year + 1, 1, 1) - first).days)]


def test_the_shipped_file_and_its_documented_example_are_valid(tmp_path: Path) -> None:
    assert load_work_calendar(SHIPPED)[1] == []
    # The example in the file's header is the 2026 notice; uncommented, it agrees with the package.
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#   years:"))
    example = "\n".join(line[1:] for line in lines[start:] if line.startswith("#  "))
    calendar = _calendar(tmp_path, example)
    assert calendar.listed_years == {2026}
    assert [d for d in _days(2026) if calendar.is_working_day(d) != chinese_calendar.is_workday(d)] == []


def test_the_package_decides_the_years_it_has() -> None:
    calendar = WorkCalendar()
    assert PACKAGE_YEARS[0] <= 2026 <= PACKAGE_YEARS[1]
    assert calendar.source(date(2026, 10, 5)) == "chinese-calendar"
    assert not calendar.is_working_day(date(2026, 10, 5))  # a Monday in the National Day week
    assert calendar.is_working_day(date(2026, 10, 10))  # a Saturday worked in exchange (调休)
    assert not calendar.is_working_day(date(2026, 10, 11))  # an ordinary Sunday
    assert calendar.is_working_day(date(2026, 10, 12))


def test_a_year_nobody_has_gets_weekends_and_the_statutory_days_off() -> None:
    calendar = WorkCalendar()
    assert calendar.source(date(UNPUBLISHED, 6, 1)) == "statutory"
    off = statutory_days_off(UNPUBLISHED)
    assert len(off) == 13  # 1 + 4 + 1 + 2 + 1 + 1 + 3 days
    assert {date(UNPUBLISHED, 1, 1), date(UNPUBLISHED, 5, 2), date(UNPUBLISHED, 10, 3)} <= off
    # Spring Festival 2099 is Wednesday 21 January: the eve and the first three days are off.
    assert [calendar.is_working_day(date(2099, 1, d)) for d in range(19, 26)] == [
        True, False, False, False, False, False, False]  # Mon; Tue eve; Wed-Fri; weekend


def test_a_listed_year_replaces_the_package(tmp_path: Path) -> None:
    calendar = _listed_year(tmp_path, 2026, "{name: national_day, from: 2026-10-01, to: 2026-10-03}",
                            working_days="[2026-10-11]")
    assert calendar.source(date(2026, 10, 5)) == "config"
    assert not calendar.is_working_day(date(2026, 10, 2))
    assert calendar.is_working_day(date(2026, 10, 5))  # the package has it off; the file does not
    assert not calendar.is_working_day(date(2026, 10, 10))  # the package's make-up day is not listed
    assert calendar.is_working_day(date(2026, 10, 11))
    assert calendar.source(date(2025, 10, 5)) == "chinese-calendar"  # other years keep the package


def test_a_new_year_range_reaching_into_december_counts_there(tmp_path: Path) -> None:
    calendar = _listed_year(tmp_path, 2099, "{name: new_year, from: 2098-12-31, to: 2099-01-02}")
    assert calendar.source(date(2098, 12, 31)) == "config"
    assert not calendar.is_working_day(date(2098, 12, 31))  # a Wednesday
    assert calendar.is_working_day(date(2098, 12, 30))


def test_next_and_first_working_day() -> None:
    calendar = WorkCalendar()
    assert calendar.next_working_day(date(2026, 9, 30)) == date(2026, 10, 8)
    assert calendar.first_working_day_from(date(2026, 9, 30)) == date(2026, 9, 30)
    assert calendar.first_working_day_from(date(2026, 10, 1)) == date(2026, 10, 8)
    assert calendar.next_working_day(date(2026, 10, 9)) == date(2026, 10, 10)  # the make-up Saturday
    assert calendar.days_off_before(date(2026, 10, 8)) == 7
    assert calendar.days_off_before(date(2026, 10, 9)) == 0


def test_the_module_reads_the_file_in_force_and_again_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    assert not work_calendar.is_working_day(date(UNPUBLISHED, 1, 21))  # no file: statutory
    path = config / "work_calendar.yaml"
    path.write_text("years:\n  2099:\n    holidays: []\n", encoding="utf-8")
    assert work_calendar.is_working_day(date(UNPUBLISHED, 1, 21))
    assert work_calendar.next_working_day(date(UNPUBLISHED, 1, 21)) == date(UNPUBLISHED, 1, 22)
    path.write_text("years:\n  2099:\n    holidays: [{name: x, from: 2099-01-22, to: 2099-01-21}]\n",
                    encoding="utf-8")
    with pytest.raises(WorkCalendarError) as raised:
        work_calendar.is_working_day(date(UNPUBLISHED, 1, 21))
    assert "work_calendar.yaml:3:" in str(raised.value) and "before 'from'" in str(raised.value)


# --- `journeys validate`: each mistake at its line ---------------------------------------------------

GOOD = """\
years:
  2099:
    holidays:
      - {name: new_year, from: 2098-12-31, to: 2099-01-02}
      - {name: spring_festival, from: 2099-01-20, to: 2099-01-26}
    working_days: [2099-01-17]
"""

# (name, text to replace, its replacement, the text marking the offending line, words the message must contain)
MISTAKES: list[tuple[str, str, str, str, list[str]]] = [
    ("ends swapped", "from: 2099-01-20, to: 2099-01-26", "from: 2099-01-26, to: 2099-01-20", "2099-01-26, to",
     ["'to'", "before 'from'"]),
    ("make-up day on a weekday", "[2099-01-17]", "[2099-01-19]", "2099-01-19", ["Monday", "Saturday or Sunday"]),
    ("make-up day inside a holiday", "[2099-01-17]", "[2099-01-24]", "2099-01-24",
     ["both a make-up working day and a day off", "spring_festival"]),
    ("make-up day twice", "[2099-01-17]", "[2099-01-17, 2099-01-17]", "[2099-01-17, 2099", ["listed twice"]),
    ("overlapping ranges", "from: 2099-01-20, to: 2099-01-26", "from: 2099-01-02, to: 2099-01-08",
     "2099-01-02, to: 2099-01-08", ["overlaps", "new_year"]),
    ("date outside its year", "from: 2099-01-20, to: 2099-01-26", "from: 2100-01-20, to: 2100-01-26", "2100-01-20",
     ["must fall in 2099"]),
    ("year out of range", "  2099:", "  2101:", "2101:", ["year 2101", "2000 to 2100"]),
    ("unknown field", "    working_days:", "    workdays:", "workdays:", ["unknown field", "workdays"]),
    ("date as a number", "from: 2099-01-20", "from: 20990120", "20990120", ["YYYY-MM-DD"]),
    ("not a date", "from: 2099-01-20", "from: soon", "from: soon", ["from"]),
    ("range too long", "to: 2099-01-26", "to: 2099-03-26", "2099-03-26", ["more than 31 days"]),
]


def _validate_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> tuple[int, str]:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    path = config / "work_calendar.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    result = CliRunner().invoke(build_app(), ["validate", str(ROOT / "journeys" / "holiday-service-pack.yaml")])
    return result.exit_code, result.output


def test_a_good_file_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = _validate_with(tmp_path, monkeypatch, GOOD)
    assert code == 0, output


@pytest.mark.parametrize(("name", "old", "new", "marker", "words"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_mistake_is_reported_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, old: str, new: str, marker: str, words: list[str]
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    code, output = _validate_with(tmp_path, monkeypatch, text)
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if marker in row)
    reported = [row for row in output.splitlines() if "work_calendar.yaml:" in row]
    assert code == 1, output
    assert any(f"work_calendar.yaml:{line}:" in row and all(w in row for w in words) for row in reported), output


def test_on_non_working_day_takes_only_its_values(tmp_path: Path) -> None:
    journey = (ROOT / "journeys" / "renewal-reminder.yaml").read_text(encoding="utf-8")
    assert 'at: "10:00"' in journey
    target = tmp_path / "journeys" / "renewal-reminder.yaml"
    target.parent.mkdir()
    bad = journey.replace('at: "10:00"', 'at: "10:00"\n    on_non_working_day: skip', 1)
    target.write_text(bad, encoding="utf-8")
    result = CliRunner().invoke(build_app(), ["validate", str(target)])
    line = next(n for n, row in enumerate(bad.splitlines(), start=1) if "on_non_working_day" in row)
    assert result.exit_code == 1
    assert f"renewal-reminder.yaml:{line}:" in result.output and "next_working_day" in result.output
