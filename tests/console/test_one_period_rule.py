"""One period typed the same way gives the same period, and the same counts, everywhere.

``journeys report --to`` and the console's report form read the end date as the first day out, while
the journey page, ``journeys simulate`` and the console's simulate form read it as the last day, included:
the same two dates counted a day less in the report. Every end is now read by
``engine.language.moments.parse_period_end`` (a date is the last day, included), said on the forms and in
``--help``. Rows sit just inside and just outside the period's local days (Asia/Shanghai, the programme's).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from starlette.testclient import TestClient
from typer.testing import CliRunner

from engine.cli import build_app
from store.clock import as_utc
from store.db import session_scope
from store.models import AgentTask, Touch
from tests.console.conftest import Seed, login

SHANGHAI = ZoneInfo("Asia/Shanghai")
FIRST, LAST = date(2026, 11, 1), date(2026, 11, 30)
JOURNEY = "complaint-response"
# Local moments: the first minute of the period, the last day's evening, the next day's first hour.
INSIDE = (datetime.combine(FIRST, time(0, 5)), datetime.combine(LAST, time(23, 30)))
OUTSIDE = (datetime.combine(FIRST - timedelta(days=1), time(23, 55)), datetime.combine(LAST + timedelta(days=1),
                                                                                        time(0, 30)))


def _rows(db_url: str, customer_id: int) -> None:
    with session_scope(db_url) as s:
        for n, local in enumerate((*INSIDE, *OUTSIDE)):
            at = as_utc(local.replace(tzinfo=SHANGHAI))
            s.add(Touch(key=f"period:{n}", customer_id=customer_id, journey_id=JOURNEY, journey_version="v1",
                        step_id="acknowledge", occurrence=f"p{n}", category="service", channel="sms",
                        template="complaint_received", planned_for=at, due_at=at, status="delivered",
                        created_at=at, sent_at=at, delivered_at=at))
            s.add(AgentTask(key=f"period:{n}", customer_id=customer_id, journey_id=JOURNEY, journey_version="v1",
                            step_id="handle", occurrence=f"p{n}", queue="complaints", priority=1,
                            due_at=at + timedelta(hours=24), created_at=at, status="open"))


def _cell(page: str, row: str, key: str) -> str:
    body = page.split(row, 1)[1].split("</tr>", 1)[0]
    found = re.search(rf'data-(?:metric|k)="{key}"[^>]*>([^<]*)<', body)
    assert found, body
    return found.group(1).replace("✔", "").replace("✘", "").strip()


def test_the_same_two_dates_are_the_same_period_in_the_cli_and_every_page(client: TestClient, seed: Seed,
                                                                           db_url: str) -> None:
    _rows(db_url, seed.customers["C1"])
    typed = ["--from", FIRST.isoformat(), "--to", LAST.isoformat()]
    result = CliRunner().invoke(build_app(), ["report", *typed, "--by", "journey", "--json"])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.output)
    figures = cli["groups"][JOURNEY]
    assert (figures["planned"], figures["delivered"], figures["tasks"]) == (len(INSIDE),) * 3
    simulated = CliRunner().invoke(build_app(), ["simulate", *typed, "--json"])
    assert simulated.exit_code == 0, simulated.output
    dry_run = json.loads(simulated.output)
    assert (dry_run["from"], dry_run["to"]) == (cli["period"]["from"], cli["period"]["to"])
    assert dry_run["days"][-1]["day"] == LAST.isoformat()

    login(client, "olga")
    params = {"start": FIRST.isoformat(), "end": LAST.isoformat()}
    report = client.get("/ops/report", params={**params, "by": "journey"}).text
    assert f"{FIRST.isoformat()} – {LAST.isoformat()} · China (Shanghai) Time" in report
    row = f'data-group="{JOURNEY}"'
    assert _cell(report, row, "planned") == str(figures["planned"])
    journey = client.get(f"/ops/journeys/{JOURNEY}", params=params).text
    assert _cell(journey, '<tr data-step="handle">', "tasks_opened") == str(figures["tasks"])
    assert _cell(journey, '<tr data-step="acknowledge">', "delivered") == str(figures["delivered"])
    simulate = client.get("/ops/simulate", params=params).text
    days = re.findall(r"<tr><td>(\d{4}-\d{2}-\d{2})</td>", simulate)
    assert (days[0], days[-1]) == (FIRST.isoformat(), LAST.isoformat())


def test_the_forms_and_the_help_say_the_end_date_is_included(client: TestClient) -> None:
    login(client, "olga")
    for path in ("/ops/report", "/ops/simulate", f"/ops/journeys/{JOURNEY}"):
        assert "To (inclusive)" in client.get(path).text, path
    for command in ("report", "simulate"):
        shown = CliRunner().invoke(build_app(), [command, "--help"], env={"COLUMNS": "400"}).output
        assert "the last day, included" in " ".join(shown.replace("│", " ").split()), command
