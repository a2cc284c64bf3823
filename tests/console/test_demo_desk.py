"""The demo's agents have teams and skills, and the demo desk routes tasks by them.

Before, the demo's agents had neither: every agent saw and worked every queue, so the demo
showed nothing of the routing by team and skill that config/queues.yaml declares.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlmodel import select

from console import queues
from engine.demo.desk import ROSTER, Desk
from engine.demo.world import DayStats, World
from engine.language.settings_model import SKILLS
from store.clock import utcnow
from store.db import session_scope
from store.models import AgentTask, AppUser, Customer
from tests.console.conftest import add_task


def _customers(url: str) -> dict[str, int]:
    now = utcnow()
    out: dict[str, int] = {}
    with session_scope(url) as s:
        for ext, locale in (("D1", "zh-CN"), ("D2", "en-US")):
            c = Customer(external_id=ext, name="演示客户", tier="gold", locale=locale, created_at=now, updated_at=now)
            s.add(c)
            s.flush()
            assert c.id is not None
            out[ext] = c.id
    return out


def _task(url: str, key: str, customer_id: int, queue: str, journey: str) -> int:
    with session_scope(url) as s:
        return add_task(s, key, customer_id, now=utcnow(), due_in=timedelta(hours=4), queue=queue, journey_id=journey,
                        script=None)


def test_the_roster_names_real_teams_and_skills() -> None:
    desk = queues.current()
    served = {team for name in desk.declared for team in desk.queue(name).teams}
    for team, skills in ROSTER:
        assert team is None or team in served, team
        assert set(skills) <= set(SKILLS)
    # Every skill a queue requires is held by someone among the first three (the smallest floor).
    needed = {skill for name in desk.declared for skill in desk.queue(name).requires}
    assert needed <= {skill for _team, skills in ROSTER[:3] for skill in skills}


@pytest.mark.parametrize("strategy", ["least_loaded", "none"])
def test_the_demo_desk_routes_by_team_and_skill(db_url: str, monkeypatch: pytest.MonkeyPatch, strategy: str) -> None:
    monkeypatch.setenv("JOURNEYS_ASSIGNMENT", strategy)  # none: all left in the pool, taken as the inbox offers
    ids = _customers(db_url)
    rng = random.Random(7)
    world = World(db_url, cast(Any, None), cast(Any, None), cast(Any, None), rng)
    desk = Desk(db_url, world, rng, agents=3)
    assert [(a.team, set(a.skills)) for a in desk.agents] == [(t, set(s)) for t, s in ROSTER[:3]]
    made = {
        "gold": _task(db_url, "g", ids["D1"], "gold_callback", "gold-monthly-callback"),
        "complaint": _task(db_url, "c", ids["D2"], "complaints", "complaint-response"),
        "health": _task(db_url, "h", ids["D1"], "health_booking", "potential-health-consultation"),
    }
    at = utcnow()
    for task_id in made.values():
        desk.handle_at[task_id] = at - timedelta(minutes=1)
    desk.work(at, DayStats())
    with session_scope(db_url) as s:
        team_of = {u.id: (u.username, u.team, set(u.skills or ())) for u in s.exec(select(AppUser)).all()}
        done = {name: s.get(AgentTask, task_id) for name, task_id in made.items()}
        assert all(t is not None and t.status == "done" for t in done.values())
        worker = {name: team_of[t.assignee_id] for name, t in done.items() if t is not None and t.assignee_id}
    # Each by its queue's team or by the agent without a team; the health booking only by a licensed agent.
    assert worker["gold"][1] in ("gold_callback", None)
    assert worker["complaint"][1] in ("complaints", None) and "lang:en" in worker["complaint"][2]
    assert "licence:health" in worker["health"][2] and worker["health"][0] == "agent03"
    if strategy == "least_loaded":
        assert (worker["gold"][0], worker["complaint"][0]) == ("agent01", "agent02")
