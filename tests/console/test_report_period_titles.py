"""A report's half-open period ``[start, end)`` is titled one way wherever it is shown.

The demo printed November as "Per tier, 2026-11-01 – 2026-11-30" above "Every metric, 2026-11-01 –
2026-12-01"; the CLI's table and charts named the exclusive end (12-01) and the console's page gave
"2026-11-01 00:00 – 2026-12-01 00:00". Every title now comes from ``reports.period_text``: the first and
last day of a period of whole days.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from starlette.testclient import TestClient
from typer.testing import CliRunner

from engine.cli import build_app
from engine.demo.summary import DemoResult, summary_table
from engine.demo.world import DayStats
from engine.loop.reports import build_report, render_by_metric
from tests.console.conftest import login

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOVEMBER = (datetime(2026, 11, 1, tzinfo=SHANGHAI), datetime(2026, 12, 1, tzinfo=SHANGHAI))
SHOWN = "2026-11-01 – 2026-11-30"


def _printed(renderable: object) -> str:
    console = Console(record=True, width=400)
    console.print(renderable)
    return console.export_text()


def test_the_same_period_is_titled_alike_everywhere(client: TestClient, db_url: str, tmp_path: Path) -> None:
    cli = CliRunner().invoke(build_app(), ["report", "--from", "2026-11-01", "--to", "2026-11-30"],
                             env={"COLUMNS": "400"})
    assert cli.exit_code == 0, cli.output
    assert f"Service journeys {SHOWN}" in cli.output

    report = build_report(*NOVEMBER, "tier", now=NOVEMBER[1])
    console = Console(record=True, width=400)
    render_by_metric(report, console)
    assert f"Every metric, {SHOWN}" in console.export_text()

    for with_report in (report, None):  # the demo's table, from the report or from its own moments
        result = DemoResult(start=NOVEMBER[0], end=NOVEMBER[1], rows=[], total={}, stats=DayStats(), charts=[],
                            database=tmp_path / "db", log_file=tmp_path / "log", provider_duplicates={},
                            planner="test", seconds=0.0, report=with_report)
        assert f"Per tier, {SHOWN}" in _printed(summary_table(result))

    login(client, "olga")
    page = client.get("/ops/report", params={"start": "2026-11-01", "end": "2026-11-30", "by": "tier"})
    found = re.search(r'data-testid="report-period">([^<]*)<', page.text)
    assert found, page.text[:2000]
    assert " ".join(found.group(1).split()).endswith(f"{SHOWN} · China (Shanghai) Time")


def test_one_day_and_moments() -> None:
    from engine.loop.reports import period_text

    one_day = (datetime(2027, 2, 28, 16, tzinfo=UTC), datetime(2027, 3, 1, 16, tzinfo=UTC))
    assert period_text(*one_day, "Asia/Shanghai") == "2027-03-01"
    # Off midnight the bounds are moments; the end is the first moment out of the period.
    assert period_text(datetime(2027, 3, 1, 1, tzinfo=UTC), datetime(2027, 3, 1, 9, tzinfo=UTC),
                       "Asia/Shanghai") == "2027-03-01 09:00 – 2027-03-01 17:00"
