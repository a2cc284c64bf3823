"""``journeys report`` shows the touches that failed over to another channel.

``failed_over`` was computed per channel (it lowers the delivery rate) but no column of the table showed
it, so a reader saw SMS's delivery rate fall below its reach with nothing to say why.
"""

from __future__ import annotations

from datetime import timedelta

from typer.testing import CliRunner

from engine.cli import build_app
from engine.loop.reports import COLUMNS
from store.clock import utcnow
from tests.failover_book import FAILED_OVER, fail_over_two


def _row(output: str, name: str) -> dict[str, str]:
    line = next(line for line in output.splitlines() if line.strip("│ ").startswith(name + " "))
    cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
    return dict(zip(["group", *(key for key, _h, _k in COLUMNS)], cells, strict=True))


def test_the_report_table_has_a_failed_over_column(db_url: str) -> None:
    fail_over_two(db_url)
    today = utcnow().date()
    period = ["--from", (today - timedelta(days=1)).isoformat(), "--to", (today + timedelta(days=1)).isoformat()]
    table = CliRunner().invoke(build_app(), ["report", *period, "--by", "channel"], env={"COLUMNS": "400"})
    assert table.exit_code == 0, table.output
    assert "failed over" in table.output
    assert _row(table.output, "sms")["failed_over"] == str(FAILED_OVER)
    assert _row(table.output, "email")["failed_over"] == "0"
    assert _row(table.output, "total")["failed_over"] == str(FAILED_OVER)
