"""``journeys report``: JSON for machines, a table for people, PNG charts; and the other closed-loop commands."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from engine.cli import build_app
from engine.loop.reports import build_report, tier_summary
from store.db import session_scope
from tests.closed_loop_book import END, NOW, START, build

PERIOD = ["--from", "2026-01-01", "--to", "2026-03-31", "--now", "2026-04-01T00:00:00+00:00"]


def _book(db_url: str) -> dict[str, int]:
    with session_scope(db_url) as session:
        return build(session)


def test_report_json_table_and_charts(db_url: str, tmp_path: Path) -> None:
    _book(db_url)
    runner = CliRunner()
    result = runner.invoke(build_app(), ["report", *PERIOD, "--by", "tier", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # Same figures as test_metrics: reach 2/5, churn 2/5, NPS (3−2)/5×100, precision 5/7.
    assert (data["total"]["reach_rate"], data["total"]["churn_rate"], data["total"]["nps"]) == (0.4, 0.4, 20.0)
    assert data["groups"]["gold"]["churn_rate"] == 0.5
    checks = {c["metric"]: (c["value"], c["met"]) for c in data["target_check"]}
    assert checks == {
        "precision": (0.7143, True),  # ≥ 40%
        "churn_rate": (0.4, False),  # < 5%
        "csat": (0.6, False),  # ≥ 85%
        "complaint_response_hours": (31.0, False),  # ≤ 24 h
        "negative_callback_hours": (6.0, True),  # ≤ 6 h
    }
    charts = sorted(p.name for p in tmp_path.glob("*.png"))
    assert charts == ["churn_by_tier.png", "nps_trend.png", "reach_by_tier.png", "sla_compliance.png"]
    for name in charts:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    table = runner.invoke(build_app(), ["report", *PERIOD, "--by", "channel"], env={"COLUMNS": "220"})
    assert table.exit_code == 0, table.output
    assert "total" in table.output and "sms" in table.output and "33.3%" in table.output  # sms reach 1/3
    assert "Programme targets" in table.output and "gold-monthly" in table.output  # lift table

    bad = runner.invoke(build_app(), ["report", *PERIOD, "--by", "colour"])
    assert bad.exit_code != 0


def test_tier_summary_for_the_demo(db_url: str) -> None:
    _book(db_url)
    rows = {r["tier"]: r for r in tier_summary(START, END, now=NOW, url=db_url)}
    assert (rows["gold"]["reach_rate"], rows["gold"]["churn_rate"], rows["platinum"]["sla_compliance"]) == (
        1.0, 0.5, 1.0,
    )
    report = build_report(START, END, "journey", now=NOW, url=db_url)
    assert set(report["tier_groups"]) == {"diamond", "platinum", "gold", "silver", "potential", "none"}


def test_retier_review_churn_check_and_trace_commands(db_url: str) -> None:
    ids = _book(db_url)
    runner = CliRunner()
    retier = runner.invoke(build_app(), ["retier", "--at", "2026-04-01", "--json"])
    assert retier.exit_code == 0, retier.output
    assert json.loads(retier.output)["scored"] == 6
    review = runner.invoke(build_app(), ["tier-review", "--at", "2026-04-01"])
    assert review.exit_code == 0, review.output
    assert "gold" in review.output
    check = runner.invoke(build_app(), ["churn-check", "--at", "2026-04-01"])
    assert check.exit_code == 0 and "churn warnings:" in check.output
    trace = runner.invoke(build_app(), ["trace", "--outcome", str(ids["O2"])])
    assert trace.exit_code == 0, trace.output
    assert json.loads(trace.output)["entry_rule"] == "gold-monthly: entry"
