"""An outcome only once the task is claimed, on the API as on the desk's pages (README, Agent desk):
the claim marks the start of the call. Before, ``POST /api/tasks/{id}/complete`` closed an assigned or
pool task nobody had claimed (200) while the page refused it. Differential: the API and the page give
the same verdict on the same task, before and after the claim."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from store.db import session_scope
from store.models import AgentTask
from tests.console.conftest import Seed, login

ANN_KEY = "ann-own-key-0123456789"


@pytest.fixture
def console_env(console_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_API_KEYS", f"ann:agent:{ANN_KEY}")


def state(db_url: str, task_id: int) -> tuple[str, int | None]:
    with session_scope(db_url) as s:
        task = s.get(AgentTask, task_id)
        assert task is not None
        return task.status, task.assignee_id


def page_completes(client: TestClient, token: str, task_id: int) -> bool:
    client.post(f"/tasks/{task_id}/complete", data={"csrf_token": token, "outcome": "no_answer"},
                follow_redirects=False)
    return state(str(client.app.state.settings.database_url), task_id)[0] == "done"  # type: ignore[attr-defined]


@pytest.mark.parametrize("task", ["ann_first", "free"])  # assigned to ann; in the pool
@pytest.mark.parametrize("via", ["api", "page"])
def test_an_unclaimed_task_is_completed_by_neither_until_claimed(client: TestClient, db_url: str, seed: Seed,
                                                                 task: str, via: str) -> None:
    task_id = seed.tasks[task]
    token = login(client, "ann")
    before = state(db_url, task_id)

    def complete() -> None:
        if via == "api":
            answer = client.post(f"/api/tasks/{task_id}/complete", headers={"X-API-Key": ANN_KEY},
                                 json={"outcome": "no_answer"})
            assert answer.status_code in (200, 409), answer.text
            if answer.status_code == 409:
                assert answer.json() == {"detail": "claim_first"}
        else:
            page_completes(client, token, task_id)

    complete()
    assert state(db_url, task_id) == before  # nothing changed: not claimed yet
    claimed = client.post(f"/api/tasks/{task_id}/claim", headers={"X-API-Key": ANN_KEY})
    assert claimed.status_code == 200
    complete()
    assert state(db_url, task_id) == ("done", seed.users["ann"])


def test_claiming_twice_from_the_page_is_no_error(client: TestClient, db_url: str, seed: Seed) -> None:
    """A double click on Claim (or the button in a second tab) said "This task is no longer open." though the
    first post had claimed it for her; anyone else's claim is still refused."""
    token = login(client, "ann")
    task_id = seed.tasks["free"]
    for _ in range(2):
        answer = client.post(f"/tasks/{task_id}/claim", data={"csrf_token": token}, follow_redirects=True)
        assert "Task claimed." in answer.text and "no longer open" not in answer.text
    assert state(db_url, task_id) == ("claimed", seed.users["ann"])
    token = login(client, "sue")  # her supervisor, who sees the task
    refused = client.post(f"/tasks/{task_id}/claim", data={"csrf_token": token}, follow_redirects=True)
    assert "This task is no longer open." in refused.text and "Task claimed." not in refused.text
