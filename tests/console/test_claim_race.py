"""Two agents claiming one task: exactly one gets it, the other is told so on her inbox (not "no such page");
an agent whose claimed task was given away during the call gets her notes back."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from console import routes_tasks
from console.tasks import TaskConflict
from tests.console.conftest import Seed, add_user, login, user

CLAIMED = "Task claimed."
GONE = "This task is no longer open."
LOST = "Someone else claimed this task first."


def _claim(client: TestClient, token: str, task_id: int) -> Any:
    return client.post(f"/tasks/{task_id}/claim", data={"csrf_token": token}, follow_redirects=False)


def test_the_agent_who_claims_second_lands_on_her_inbox_told_the_task_is_gone(app: FastAPI, seed: Seed,
                                                                              db_url: str) -> None:
    add_user(db_url, "dee", "a")
    task = seed.tasks["free"]
    with TestClient(app) as ann, TestClient(app) as dee:
        ann_token, dee_token = login(ann, "ann"), login(dee, "dee")
        # Both have the task open on their screens.
        assert ann.get(f"/tasks/{task}").status_code == dee.get(f"/tasks/{task}").status_code == 200
        assert _claim(ann, ann_token, task).headers["location"] == f"/tasks/{task}"
        lost = _claim(dee, dee_token, task)
        assert (lost.status_code, lost.headers["location"]) == (303, "/inbox")
        inbox = dee.get("/inbox")
        assert inbox.status_code == 200 and GONE in inbox.text
        assert dee.get(f"/tasks/{task}").status_code == 404  # still not hers to see


def test_claims_sent_at_once_give_the_task_to_exactly_one(app: FastAPI, seed: Seed, db_url: str) -> None:
    names = ["ann", "dee", "eve", "fay"]
    for name in names[1:]:
        add_user(db_url, name, "a")
    task = seed.tasks["free"]
    clients = [TestClient(app) for _ in names]
    tokens = [login(c, n) for c, n in zip(clients, names, strict=True)]
    start = threading.Barrier(len(names))
    landed: dict[str, str] = {}

    def claim(i: int) -> None:
        start.wait()
        landed[names[i]] = _claim(clients[i], tokens[i], task).headers["location"]

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, where in landed.items() if where == f"/tasks/{task}"]
    assert len(winners) == 1 and len(landed) == len(names), landed
    for i, name in enumerate(names):
        page = clients[i].get(landed[name]).text
        assert (CLAIMED in page) if name in winners else (GONE in page or LOST in page), name
        clients[i].close()


def test_losing_the_race_between_the_check_and_the_write_says_who_won(app: FastAPI, seed: Seed, db_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    task = seed.tasks["free"]
    real_claim = routes_tasks.tasks.claim

    def colleague_first(who: Any, task_id: int, **kw: Any) -> None:
        # What the database's guard sees when a colleague's claim commits after ann's read of the task.
        real_claim(user(db_url, "bob"), task_id, **kw)
        raise TaskConflict("already_claimed")

    monkeypatch.setattr(routes_tasks.tasks, "claim", colleague_first)
    with TestClient(app) as ann:
        token = login(ann, "ann")
        lost = _claim(ann, token, task)
        assert (lost.status_code, lost.headers["location"]) == (303, "/inbox")
        assert LOST in ann.get("/inbox").text


def test_notes_of_a_call_whose_task_was_given_away_meanwhile_come_back_to_be_copied(app: FastAPI, seed: Seed,
                                                                                   db_url: str) -> None:
    task, notes = seed.tasks["free"], "Customer asks for the renewal quote by e-mail; prefers mornings."
    with TestClient(app) as ann, TestClient(app) as sue:
        ann_token, sue_token = login(ann, "ann"), login(sue, "sue")
        assert _claim(ann, ann_token, task).headers["location"] == f"/tasks/{task}"
        assert ann.get(f"/tasks/{task}").status_code == 200  # on the call, typing her notes
        moved = sue.post(f"/tasks/{task}/reassign", data={"csrf_token": sue_token, "to_user_id": seed.users["bob"]},
                         follow_redirects=False)
        assert moved.status_code == 303
        form = {"csrf_token": ann_token, "outcome": "reached", "notes": notes}
        gone = ann.post(f"/tasks/{task}/complete", data=form, follow_redirects=False)
        assert gone.status_code == 404
        assert notes in gone.text and GONE in gone.text
        # An id that never was hers answers alike: the page tells nothing about which ids exist.
        missing = ann.post("/tasks/999999/complete", data=form, follow_redirects=False)
        assert missing.status_code == 404
        assert missing.text.replace("/tasks/999999/", "/tasks/N/") == gone.text.replace(f"/tasks/{task}/", "/tasks/N/")
