"""An escalation a supervisor holds is on every supervisor's screen (test_reveal) but stays their team's: another
team's supervisor cannot hand it on by its id, into their own team and so to its customer's details. One nobody
holds (a team without a supervisor) stays any supervisor's to take."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from sqlmodel import select
from starlette.testclient import TestClient

from store.db import session_scope
from store.models import AgentTask
from tests.console.conftest import Seed, add_task, add_user, login


def _escalation(db_url: str, seed: Seed, key: str, assignee_id: int | None, status: str = "open") -> int:
    with session_scope(db_url) as s:
        return add_task(s, key, seed.customers["C1"], now=seed.now, due_in=timedelta(hours=1), assignee_id=assignee_id,
                        queue="supervisor", status=status)


def _holder(db_url: str, task_id: int) -> int | None:
    with session_scope(db_url) as s:
        return s.exec(select(AgentTask.assignee_id).where(AgentTask.id == task_id)).one()


def test_another_teams_supervisor_cannot_hand_on_an_escalation_by_its_id(app: FastAPI, seed: Seed,
                                                                         db_url: str) -> None:
    sam = add_user(db_url, "sam", "b", role="supervisor")
    sid = add_user(db_url, "sid", "b")
    held = _escalation(db_url, seed, "escalation:held", seed.users["sue"])
    claimed = _escalation(db_url, seed, "escalation:claimed", seed.users["sue"], status="claimed")
    with TestClient(app) as c:
        token = login(c, "sam")
        for task in (held, claimed):
            page = c.get(f"/tasks/{task}")
            assert page.status_code == 200 and f"/tasks/{task}/reassign" not in page.text  # no form offered
            for to in (sid, sam):  # to her agent, or to herself to claim and unmask it
                moved = c.post(f"/tasks/{task}/reassign", data={"csrf_token": token, "to_user_id": to},
                               follow_redirects=False)
                assert moved.status_code == 403
        bulk = c.post("/supervisor/assign", follow_redirects=True,
                      data={"csrf_token": token, "to_user_id": sid, "task_ids": [held, claimed]})
        assert "2 task(s) are not your team" in bulk.text
    assert _holder(db_url, held) == _holder(db_url, claimed) == seed.users["sue"]
    with TestClient(app) as c:  # her own team's supervisor still hands it on
        token = login(c, "sue")
        assert f"/tasks/{held}/reassign" in c.get(f"/tasks/{held}").text
        c.post(f"/tasks/{held}/reassign", data={"csrf_token": token, "to_user_id": seed.users["ann"]})
    assert _holder(db_url, held) == seed.users["ann"]


def test_an_escalation_nobody_holds_is_any_supervisors_to_take(app: FastAPI, seed: Seed, db_url: str) -> None:
    sam = add_user(db_url, "sam", "b", role="supervisor")
    pooled = _escalation(db_url, seed, "escalation:pooled", None)
    with TestClient(app) as c:
        token = login(c, "sam")
        assert c.post(f"/tasks/{pooled}/reassign", data={"csrf_token": token, "to_user_id": sam},
                      follow_redirects=False).status_code == 303
    assert _holder(db_url, pooled) == sam
