"""The ops journey pages and the report count the same store the same way (a differential test).

A journey's page counted every agent task created in its period as opened, cancelled ones too, and the
journeys list did the same for its week's tasks, while the report counts tasks created and not cancelled
(a cancelled task, e.g. of a customer retention removed, was never there to work): the same journey
read more tasks on its page than in the report. Touches are compared as well: planned (a rule-dropped
touch counts, a cancelled one does not), delivered and failed; and the touches a rule dropped, which the
seed wrote as ``cancelled`` with made-up reasons where the planner writes ``dropped`` and its rule's reason.
The list's week of touches counted a webhook step's calls, which the report leaves out (they go to another
system, not to the customer). The report's lift counted as treated every enrollment not in the holdout, those
no split placed in a branch too (entered under a version without the split), which the journey page's
experiment leaves out.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from starlette.testclient import TestClient

from engine.language.moments import parse_local_moment
from engine.loop.reports import build_report
from store.clock import to_local, utcnow
from store.db import session_scope
from store.models import WEBHOOK_CHANNEL, AgentTask, Enrollment, TaskStatus, Touch
from tests.console.conftest import Seed, login
from tests.console.ops_seed import DROPPED_BIRTHDAYS, SPLIT_JOURNEY, seed_activity

ZONE = "Asia/Shanghai"
JOURNEYS = (SPLIT_JOURNEY, "complaint-response", "birthday-care")
CRM = "claim-crm-case"
CELL = re.compile(r'<td data-k="(?P<key>[a-z_]+)">(?P<value>[^<]*)<')


def _cancelled_tasks(db_url: str, customer_id: int, now: datetime, n: int) -> None:
    """Complaint tasks cancelled before anyone worked them, as retention leaves a removed customer's open tasks."""
    with session_scope(db_url) as s:
        for i in range(n):
            at = now - timedelta(hours=4 + i)
            s.add(AgentTask(key=f"gone:{i}", customer_id=customer_id, journey_id="complaint-response",
                            journey_version="v1", step_id="handle", occurrence=f"gone{i}", queue="complaints",
                            priority=1, due_at=at + timedelta(hours=24), created_at=at, status=TaskStatus.CANCELLED))


def _crm_case(db_url: str, customer_id: int, now: datetime) -> None:
    """A claim's CRM case opened by the webhook step, then the customer told by push: one touch of the customer."""
    with session_scope(db_url) as s:
        for n, (step, channel) in enumerate((("open_case", WEBHOOK_CHANNEL), ("tell_customer", "push"))):
            at = now - timedelta(hours=5, minutes=-n)
            s.add(Touch(key=f"crm:{n}", customer_id=customer_id, journey_id=CRM, journey_version="v1", step_id=step,
                        occurrence="claim-1", category="service", channel=channel, template=step, planned_for=at,
                        due_at=at, status="delivered", created_at=at, sent_at=at, delivered_at=at))


def _unsplit(db_url: str, customer_id: int, now: datetime, n: int) -> None:
    """Enrollments of the split journey that no split placed: entered under a version without it, and done."""
    with session_scope(db_url) as s:
        for i in range(n):
            at = now - timedelta(hours=6 + i)
            s.add(Enrollment(customer_id=customer_id, journey_id=SPLIT_JOURNEY, journey_version="v0",
                             occurrence=f"before-split-{i}", step_id="done", state="exited", entered_at=at,
                             exited_at=at, exit_reason="goal"))


def _step_sums(page: str) -> dict[str, int]:
    """Per-step figures of a journey page summed over its steps (numbers only)."""
    body = page.split('data-testid="step-counts"', 1)[1].split("</table>", 1)[0]
    sums: dict[str, int] = {}
    for m in CELL.finditer(body):
        if m["value"].strip().isdigit():
            sums[m["key"]] = sums.get(m["key"], 0) + int(m["value"])
    return sums


def test_journey_pages_and_the_report_count_tasks_and_touches_alike(client: TestClient, seed: Seed,
                                                                      db_url: str) -> None:
    seed_activity(db_url, list(seed.customers.values()), seed.now)
    _cancelled_tasks(db_url, seed.customers["C2"], seed.now, 3)
    _crm_case(db_url, seed.customers["C3"], seed.now)
    _unsplit(db_url, seed.customers["C1"], seed.now, 4)
    login(client, "olga")

    now = utcnow()
    listed = client.get("/ops/journeys").text
    week = build_report(now - timedelta(days=7), now, "journey")["groups"]
    assert week[CRM]["planned"] == 1
    for journey_id in (*JOURNEYS, CRM):
        row = listed.split(f'data-journey="{journey_id}"', 1)[1].split("</tr>", 1)[0]
        shown = dict(re.findall(r'data-testid="(touches-7d|tasks-7d)">(\d+)<', row))
        figures = week.get(journey_id, {})
        assert int(shown["touches-7d"]) == (figures.get("planned") or 0), journey_id
        assert int(shown["tasks-7d"]) == (figures.get("tasks") or 0), journey_id

    today = to_local(now, ZONE).date()
    first, last = today - timedelta(days=10), today
    # The page's period: whole local days, the last one included.
    whole_days = build_report(parse_local_moment(first.isoformat(), ZONE),
                              parse_local_moment(last.isoformat(), ZONE) + timedelta(days=1), "journey")
    days = whole_days["groups"]
    assert days["complaint-response"]["tasks"] == 12  # the seed's twelve, not the three cancelled
    for journey_id in JOURNEYS:
        page = client.get(f"/ops/journeys/{journey_id}", params={"start": first.isoformat(), "end": last.isoformat()})
        assert page.status_code == 200
        sums = _step_sums(page.text)
        figures = days.get(journey_id, {})
        assert sums.get("tasks_opened", 0) == (figures.get("tasks") or 0), journey_id
        assert sums.get("delivered", 0) == (figures.get("delivered") or 0), journey_id
        assert sums.get("failed", 0) == (figures.get("failed") or 0), journey_id
        if journey_id == SPLIT_JOURNEY:  # the experiment's arms, as the report's lift counts them
            [lift] = [row for row in whole_days["lift"] if row["journey"] == SPLIT_JOURNEY]
            arms = dict(re.findall(r'<tr data-group="([a-z_]+)">.*?<td data-k="entered">(\d+)<', page.text))
            assert lift["holdout_enrolled"] == int(arms.pop("holdout"))
            assert lift["treated_enrolled"] == sum(int(n) for n in arms.values())
        if journey_id == "birthday-care":  # every touch of it dropped by a rule: planned, never sent
            greeting = page.text.split('<tr data-step="greeting">', 1)[1].split("</tr>", 1)[0]
            assert f'data-k="entered">{figures["planned"]}<' in greeting
            dropped = greeting.split('data-k="dropped">', 1)[1].split("</td>", 1)[0]
            assert "no_channel" not in dropped and "No consented, reachable channel among" in dropped
            shown = sum(int(n) for n in re.findall(r": (\d+)<br>", dropped))
            assert shown == figures["planned"] - figures["delivered"] - figures["failed"] == DROPPED_BIRTHDAYS
