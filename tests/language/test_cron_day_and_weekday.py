"""A cron that names both days of the month and weekdays fires on either, as cron does and the planner
follows: '0 10 1-7 * MON' ("the first Monday", an author means) is the 1st to the 7th and every Monday, 11
firings in March 2027. validate said nothing; it warns at the cron. 'MON#1' is the first Monday."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.language.validation import validate_journey_file
from engine.planning.plan_output import ChunkOutput
from engine.planning.planner import plan
from tests.plan_support import Book

MONTHLY = """\
id: first-monday
name: 每月首个周一 / First Monday
category: service
entry:
  schedule: {cron: "0 10 1-7 * MON"}
steps:
  - id: greet
    send: {channels: [sms], template: msg}
"""


def _firings(book: Book) -> int:
    planned: list[str] = []

    def sink(chunk: ChunkOutput) -> None:
        planned.extend(d.wanted.occurrence for d in chunk.decisions if d.planned)

    plan(datetime(2027, 3, 31, 16, tzinfo=UTC), datetime(2027, 2, 28, 16, tzinfo=UTC), dry_run=True, url=book.url,
         sink=sink)
    return len(planned)


def test_a_cron_with_days_and_weekdays_is_warned_and_fires_on_either(sqlite_book: Book) -> None:
    path = sqlite_book.journeys / "first-monday.yaml"
    path.write_text(MONTHLY, encoding="utf-8")
    loaded, problems = validate_journey_file(path, sqlite_book.templates)
    assert problems == [] and loaded is not None
    assert [(w.line, "fires on the days of the month 1-7 and, besides, on every weekday MON" in w.message)
            for w in loaded.warnings] == [(5, True)]
    sqlite_book.customer()
    assert _firings(sqlite_book) == 11  # 1-7 March and the Mondays 8, 15, 22, 29
    path.write_text(MONTHLY.replace("1-7 * MON", "* * MON#1"), encoding="utf-8")
    loaded, problems = validate_journey_file(path, sqlite_book.templates)
    assert problems == [] and loaded is not None and loaded.warnings == []
    assert _firings(sqlite_book) == 1
