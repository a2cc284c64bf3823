"""A holiday journey with a day count between entries ('after') drops a holiday that falls within it of the
last one (README: holiday journeys use per: occurrence, never a day count). validate said nothing; it warns
at the 'after', and the planner does what the file says, so the warning is about something real."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from engine.language.validation import validate_journey_file
from engine.planning.plan_output import ChunkOutput
from engine.planning.planner import plan
from tests.plan_support import Book

ROOT = Path(__file__).resolve().parents[2]

HOLIDAYS = """\
id: autumn
name: 节日问候 / Holiday greeting
category: service
entry:
  date: {anchor: holiday, holidays: [mid_autumn, national_day], offset: -3d, at: "10:00"}
reentry: {allowed: true, after: 30d}
steps:
  - id: greet
    send: {channels: [sms], template: msg}
"""


def test_a_day_count_on_a_holiday_entry_is_warned_at_its_line(sqlite_book: Book) -> None:
    path = sqlite_book.journeys / "autumn.yaml"
    path.write_text(HOLIDAYS, encoding="utf-8")
    loaded, problems = validate_journey_file(path, sqlite_book.templates)
    assert problems == [] and loaded is not None
    assert [(w.line, "skips a holiday" in w.message) for w in loaded.warnings] == [(6, True)]
    path.write_text(HOLIDAYS.replace("after: 30d", "per: occurrence"), encoding="utf-8")
    loaded, problems = validate_journey_file(path, sqlite_book.templates)
    assert problems == [] and loaded is not None and loaded.warnings == []


def _greetings(book: Book) -> list[str]:
    planned: list[str] = []

    def sink(chunk: ChunkOutput) -> None:
        planned.extend(d.wanted.occurrence for d in chunk.decisions if d.planned)

    # National Day 1 October 2025, Mid-Autumn 6 October 2025: greeted 28 September and 3 October.
    plan(datetime(2025, 10, 10, tzinfo=UTC), datetime(2025, 9, 20, tzinfo=UTC), dry_run=True, url=book.url, sink=sink)
    return sorted(planned)


def test_the_planner_skips_the_second_holiday_the_warning_names(sqlite_book: Book) -> None:
    sqlite_book.customer()
    sqlite_book.journey("autumn", HOLIDAYS)
    assert _greetings(sqlite_book) == ["national_day-2025"]
    sqlite_book.journey("autumn", HOLIDAYS.replace("after: 30d", "per: occurrence"))
    assert _greetings(sqlite_book) == ["mid_autumn-2025", "national_day-2025"]
