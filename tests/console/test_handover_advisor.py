"""A diamond customer's task is handed on to their own advisor only, as the pool shows it to no other agent
(console.queues.Scope.allows). Before, a supervisor's reassign or bulk assignment gave it to any agent of
the team, who could then claim it and unmask the customer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from console import tasks
from store.db import session_scope
from store.models import AgentTask, AppUser
from tests.console.conftest import Seed, add_task, login, user


def _assignee(db_url: str, task_id: int) -> int | None:
    with session_scope(db_url) as s:
        row = s.get(AgentTask, task_id)
        assert row is not None
        return row.assignee_id


def test_a_diamond_customers_task_goes_to_their_advisor_only(client: TestClient, seed: Seed, db_url: str) -> None:
    with session_scope(db_url) as s:  # C2 is diamond, ann is her advisor
        task = add_task(s, "t-c2", seed.customers["C2"], now=seed.now, due_in=timedelta(hours=4))
        other = add_task(s, "t-c3", seed.customers["C3"], now=seed.now, due_in=timedelta(hours=4))
    sue = user(db_url, "sue")
    with pytest.raises(tasks.TaskInvalid) as refused:
        tasks.reassign(sue, task, seed.users["bob"], db_url=db_url)
    assert refused.value.code == "advisor_only" and _assignee(db_url, task) is None
    done = tasks.assign_many(sue, [task, other], seed.users["bob"], db_url=db_url)
    assert done.assigned == [other] and done.refused == {"advisor_only": 1}

    token = login(client, "sue")
    form = {"csrf_token": token, "to_user_id": str(seed.users["bob"]), "back": "/supervisor"}
    assert client.post(f"/tasks/{task}/reassign", data=form, follow_redirects=False).status_code == 303
    assert "This diamond customer&#39;s tasks go to their own advisor only." in client.get("/supervisor").text
    assert _assignee(db_url, task) is None

    tasks.reassign(sue, task, seed.users["ann"], db_url=db_url)  # her advisor
    assert _assignee(db_url, task) == seed.users["ann"]
    with session_scope(db_url) as s:  # a departed advisor's customers are the team's again
        ann = s.get(AppUser, seed.users["ann"])
        assert ann is not None
        ann.active = False
        s.add(ann)
    tasks.reassign(sue, task, seed.users["bob"], db_url=db_url)
    assert _assignee(db_url, task) == seed.users["bob"]
