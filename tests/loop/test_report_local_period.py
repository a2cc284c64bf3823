"""``journeys report`` reads its dates in the programme's time zone, as the console's report page does.

The page reads "2026-11-01 to 2026-12-01" as local days (Asia/Shanghai: from 31 October 16:00 UTC);
the command read the same typed dates as UTC midnights, eight hours later, so the two answers for
the same period differed by whatever happened in those hours. Both must be ``build_report`` of the
same two moments, and say the dates that were typed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from typer.testing import CliRunner

from console.ops_charts import report_charts
from engine.cli import build_app
from engine.loop.reports import build_report
from store.db import session_scope
from store.models import Customer, SurveyAnswer, Touch

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
CREATED = datetime(2025, 1, 1, tzinfo=UTC)


def _touches(db_url: str) -> None:
    # 1 November 01:00 in Shanghai is still 31 October in UTC; 1 December 01:00 is 30 November.
    planned = [
        ("early", datetime(2026, 10, 31, 17, 0, tzinfo=UTC), "delivered"),  # in November locally
        ("middle", datetime(2026, 11, 15, 3, 0, tzinfo=UTC), "failed"),
        ("late", datetime(2026, 11, 30, 17, 0, tzinfo=UTC), "delivered"),  # in December locally
    ]
    with session_scope(db_url) as session:
        customer = Customer(external_id="C1", name="C1", tier="gold", branch="SH", created_at=CREATED,
                            updated_at=CREATED)
        session.add(customer)
        session.flush()
        assert customer.id is not None
        session.add_all([
            Touch(key=f"{name}:key", customer_id=customer.id, journey_id="gold-monthly", journey_version="v1",
                  step_id="send", occurrence=name, category="service", channel="sms", template="t",
                  planned_for=when, due_at=when, status=status, created_at=when, sent_at=when)
            for name, when, status in planned
        ])


def test_the_command_and_the_page_read_the_same_dates_alike(db_url: str) -> None:
    _touches(db_url)
    typed = ["--from", "2026-11-01", "--to", "2026-11-30", "--now", NOW.isoformat()]
    result = CliRunner().invoke(build_app(), ["report", *typed, "--json"])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.output)
    # What the console's page asks for the same two dates: local midnights.
    page = build_report(datetime(2026, 11, 1, tzinfo=SHANGHAI), datetime(2026, 12, 1, tzinfo=SHANGHAI), now=NOW)
    assert cli == json.loads(json.dumps(page, ensure_ascii=False))
    assert (cli["total"]["planned"], cli["total"]["delivered"], cli["total"]["reach_rate"]) == (2, 1, 0.5)

    table = CliRunner().invoke(build_app(), ["report", *typed], env={"COLUMNS": "220"})
    assert table.exit_code == 0, table.output
    assert "2026-11-01 – 2026-11-30" in table.output  # November's days, not the UTC day before


def test_the_nps_weeks_are_labelled_by_their_local_dates(db_url: str) -> None:
    _touches(db_url)
    with session_scope(db_url) as session:
        session.add_all([  # the first local week, then the second
            SurveyAnswer(customer_id=1, kind="nps", score=10, answered_at=datetime(2026, 10, 31, 18, tzinfo=UTC)),
            SurveyAnswer(customer_id=1, kind="nps", score=3, answered_at=datetime(2026, 11, 9, 3, tzinfo=UTC)),
        ])
    report = build_report(datetime(2026, 11, 1, tzinfo=SHANGHAI), datetime(2026, 12, 1, tzinfo=SHANGHAI), now=NOW)
    assert [(b["from"][:10], b["answers"], b["nps"]) for b in report["nps_trend"]] == [
        ("2026-11-01", 1, 100.0), ("2026-11-08", 1, -100.0),
    ]
    nps = {chart.key: chart for chart in report_charts(report)}["nps"]
    assert [label for _x, _y, label, _nps, _n in nps.points] == ["11-01", "11-08"]  # the page's labels


def test_the_loops_jobs_read_at_in_the_programmes_time_zone(db_url: str) -> None:
    """retier, tier-review and churn-check read ``--at 2026-12-01`` as the programme's day, like ``report``
    and the console; they read it as midnight UTC, eight hours after Shanghai's."""
    _touches(db_url)
    runner = CliRunner()
    local_midnight = datetime(2026, 12, 1, tzinfo=SHANGHAI).astimezone(UTC).isoformat()
    for command in (["retier", "--dry-run"], ["tier-review"]):
        typed = runner.invoke(build_app(), [*command, "--at", "2026-12-01", "--json"])
        assert typed.exit_code == 0, typed.output
        assert json.loads(typed.stdout)["at"] == local_midnight, command
        offset = runner.invoke(build_app(), [*command, "--at", "2026-12-01T00:00:00+00:00", "--json"])
        assert json.loads(offset.stdout)["at"] == "2026-12-01T00:00:00+00:00", command
    assert runner.invoke(build_app(), ["churn-check", "--at", "2026-12-01"]).exit_code == 0
