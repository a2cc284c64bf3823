"""The console's journey pages count planned touches as the report does: cancelled ones are not planned.

A touch withdrawn before it was due (the goal reached, an opt-out) was counted as entering its step on
the journey page and in the journeys list's week of touches, while the report's "planned" left it out;
the page shows it apart, under "Dropped" with its reason. Both count by
``engine.loop.service_metrics.counts_as_planned``.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.testclient import TestClient

from engine.language.moments import parse_local_moment
from engine.language.settings_review import programme_zone
from engine.loop.reports import build_report
from store.clock import to_local
from store.db import session_scope
from store.models import Touch
from tests.console.conftest import Seed, login

STATUSES = ("delivered", "failed", "sent", "planned", "dropped", "cancelled", "cancelled")


def test_the_journey_pages_and_the_report_count_the_same_planned_touches(client: TestClient, seed: Seed,
                                                                         db_url: str) -> None:
    with session_scope(db_url) as s:
        for i, status in enumerate(STATUSES):
            at = seed.now - timedelta(days=1, hours=i)
            s.add(Touch(key=f"planned-count:{i}", customer_id=seed.customers["C1"], journey_id="birthday-care",
                        journey_version="v", step_id="greeting", occurrence=str(i), category="service",
                        channel="sms", template="x", planned_for=at, due_at=at, created_at=at, status=status,
                        error_reason="opted out" if status == "cancelled" else None))
    zone = programme_zone()
    first = to_local(seed.now - timedelta(days=3), zone).date()
    last = to_local(seed.now, zone).date()
    report = build_report(parse_local_moment(first.isoformat()),
                          parse_local_moment(last.isoformat()) + timedelta(days=1), "journey")
    planned = report["groups"]["birthday-care"]["planned"]
    assert planned == len(STATUSES) - 2  # the two cancelled are not planned

    login(client, "olga")
    page = client.get("/ops/journeys/birthday-care", params={"start": first.isoformat(), "end": last.isoformat()})
    assert page.status_code == 200
    greeting = page.text.split('<tr data-step="greeting">', 1)[1].split("</tr>", 1)[0]
    assert f'data-k="entered">{planned}<' in greeting
    assert ": 2<" in greeting.split('data-k="dropped">', 1)[1]  # the cancelled ones, apart with their reason

    journeys = client.get("/ops/journeys").text
    row = journeys.split('data-journey="birthday-care"', 1)[1].split("</tr>", 1)[0]
    assert f'data-testid="touches-7d">{planned}<' in row
