"""simulate: daily volumes, tasks, cap and quiet-hour effects; writes nothing; a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from engine.cli import build_app
from tests.plan_support import Book, send_journey


def weekly_call(queue: str, due_within: str) -> str:
    """A service journey that opens a task in ``queue`` every Monday at 10:00."""
    return f"""
        id: weekly
        name: Weekly call
        category: service
        entry: {{schedule: {{cron: "0 10 * * MON"}}}}
        steps:
          - id: call
            task: {{queue: {queue}, due_within: {due_within}}}
    """


def test_simulate_a_week(sqlite_book: Book, tmp_path: Path) -> None:
    book = sqlite_book
    book.journey("daily", send_journey("daily", "Daily offer", '{schedule: {cron: "0 22 * * *"}}', step="offer",
                                       channels="[wechat]", category="marketing", priority=10))
    book.journey("weekly", weekly_call("service_recovery", "1d"))
    book.customer()
    book.customer(consent_wechat=False)
    chart = tmp_path / "sim.png"
    result = CliRunner().invoke(build_app(), ["simulate", "--from", "2027-03-01", "--to", "2027-03-07", "--json",
                                              "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    days = {d["day"]: d for d in report["days"]}
    # 22:00 offers move to 08:00 the next day; the cap lets 2 per rolling week through.
    assert days["2027-03-02"]["touches"] == {"daily/wechat": 1}
    assert days["2027-03-03"]["touches"] == {"daily/wechat": 1}
    assert days["2027-03-04"]["touches"] == {}
    # Created on Monday 1 March at 10:00, when the report counts them; due the next day.
    assert days["2027-03-01"]["tasks"] == {"service_recovery": 2} and days["2027-03-02"]["tasks"] == {}
    assert report["totals"] == {"touches": 2, "tasks": 2, "quiet_hour_moves": 2, "cap_drops": 5,
                                "no_channel_drops": 7}
    assert report["marketing_per_customer_rolling"] == {"window": "7d", "max": 2, "p95": 2, "customers": 1}
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert book.touches() == [] and book.tasks() == []


def test_the_days_are_those_asked_for_and_the_period_is_bounded(db_url: str) -> None:
    """--to is the last day shown (the midnight after it ends the period, it is no day of it), and a
    simulation of more than a year is refused in one line rather than run for hours."""
    result = CliRunner().invoke(build_app(), ["simulate", "--from", "2026-12-01", "--to", "2026-12-02", "--json"])
    assert result.exit_code == 0, result.output
    assert [d["day"] for d in json.loads(result.stdout)["days"]] == ["2026-12-01", "2026-12-02"]
    result = CliRunner().invoke(build_app(), ["simulate", "--from", "2026-01-01", "--to", "2199-12-31"])
    assert result.exit_code == 2
    assert "--from 2026-01-01 --to 2199-12-31 spans 63,552 days: at most 366 at a time" in result.output
    result = CliRunner().invoke(build_app(), ["simulate", "--from", "2028-01-01", "--to", "2028-12-31", "--json"])
    assert result.exit_code == 0, result.output  # a leap year, whole
    assert len(json.loads(result.stdout)["days"]) == 366


def test_a_task_counts_on_the_day_it_is_created_not_the_day_it_is_due(sqlite_book: Book) -> None:
    """A call created on the period's last day and due three days later is the period's task, on that day: the
    report counts tasks by their creation, and simulate showed it on a day after the period instead."""
    book = sqlite_book
    book.journey("weekly", weekly_call("gold_callback", "3d"))
    book.customer()
    result = CliRunner().invoke(build_app(), ["simulate", "--from", "2027-02-28", "--to", "2027-03-01", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(d["day"], d["tasks"]) for d in report["days"]] == [("2027-02-28", {}),
                                                               ("2027-03-01", {"gold_callback": 1})]
    assert report["totals"]["tasks"] == 1
