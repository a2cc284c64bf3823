"""Unmasking a customer (SPEC §9): only on a task the user is working, at most N per rolling hour, bursts flagged.

The limit is counted from the audit log in the database, so two apps on one database (two
workers) share it. Time is moved with an injected clock, never waited for.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlmodel import col, select
from starlette.testclient import TestClient

from console import tasks
from console.app import create_app
from store.db import session_scope
from store.models import AppUser, AuditLog
from tests.console.conftest import (
    PASSWORD,
    FakeClock,
    Seed,
    add_task,
    app_clients,
    csrf_of,
    login,
    password_hash,
    seed_console,
    user,
)

COOKIE = "journeys_session"
# Seeded customers as stored (what must never appear before a permitted reveal) and as masked.
C1_PHONE, C1_NAME = "+8613812345678", "张三丰"
C3_PHONE, C3_NAME, C3_MASKED_PHONE = "+8613700002222", "王五", "137****2222"


@pytest.fixture
def make_app(db_url: str, console_env: None, seed: Seed, clock: FakeClock) -> Callable[[], FastAPI]:
    """A new app on the shared database each call: several of them stand for several workers."""

    def make() -> FastAPI:
        return create_app(db_url, clock=clock)

    return make


@pytest.fixture
def open_client(make_app: Callable[[], FastAPI]) -> Iterator[Callable[..., TestClient]]:
    with app_clients(make_app) as make:
        yield make


def reveal(c: TestClient, task_id: int, token: str) -> Any:
    return c.post(f"/tasks/{task_id}/reveal", data={"csrf_token": token})


def claim(c: TestClient, task_id: int, token: str) -> None:
    response = c.post(f"/tasks/{task_id}/claim", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303


def audit_rows(db_url: str, *actions: str) -> list[AuditLog]:
    with session_scope(db_url) as s:
        return list(s.exec(select(AuditLog).where(col(AuditLog.action).in_(actions)).order_by(col(AuditLog.id))))


# --- who may unmask ------------------------------------------------------------------------------


def test_an_agent_cannot_unmask_a_task_waiting_in_the_queue(open_client: Callable[..., TestClient], seed: Seed,
                                                            db_url: str) -> None:
    c = open_client()
    token = login(c, "ann")
    response = reveal(c, seed.tasks["free"], token)
    assert response.status_code == 403
    assert "Claim this task before revealing the customer's contact details." in html.unescape(response.text)
    assert C3_PHONE not in response.text and C3_NAME not in response.text and C3_MASKED_PHONE in response.text
    assert audit_rows(db_url, "reveal") == []
    [refused] = audit_rows(db_url, "reveal_refused")
    assert (refused.actor, refused.target_type, refused.target_id) == ("ann", "task", str(seed.tasks["free"]))
    assert refused.detail == {"reason": "reveal_needs_claim"}
    # Once she has claimed it, it is her call in progress.
    claim(c, seed.tasks["free"], token)
    response = reveal(c, seed.tasks["free"], token)
    assert response.status_code == 200 and C3_PHONE in response.text and C3_NAME in response.text
    [row] = audit_rows(db_url, "reveal")
    assert row.actor == "ann" and row.detail["task_id"] == seed.tasks["free"]


def test_an_agent_cannot_unmask_her_task_before_claiming_it_nor_after_closing_it(
        open_client: Callable[..., TestClient], seed: Seed) -> None:
    c = open_client()
    token = login(c, "ann")
    page = c.get(f"/tasks/{seed.tasks['ann_first']}").text
    assert 'data-testid="reveal"' not in page and 'data-testid="reveal-hint"' in page
    assert reveal(c, seed.tasks["ann_first"], token).status_code == 403
    claim(c, seed.tasks["ann_first"], token)
    assert 'data-testid="reveal"' in c.get(f"/tasks/{seed.tasks['ann_first']}").text
    assert reveal(c, seed.tasks["ann_first"], token).status_code == 200
    c.post(f"/tasks/{seed.tasks['ann_first']}/complete",
           data={"csrf_token": token, "outcome": "reached", "confirmed": "1"})
    closed = reveal(c, seed.tasks["ann_first"], token)
    assert closed.status_code == 403 and C1_PHONE not in closed.text


def test_an_agent_gets_404_for_another_agents_task_as_for_no_task(open_client: Callable[..., TestClient],
                                                                  seed: Seed) -> None:
    c = open_client()
    token = login(c, "ann")
    hidden, missing = reveal(c, seed.tasks["bob"], token), reveal(c, 999_999, token)
    assert (hidden.status_code, missing.status_code) == (404, 404)
    # The same page; only the address (echoed in the language switch) differs.
    assert hidden.text.replace(f"/tasks/{seed.tasks['bob']}/", "/tasks/N/") == missing.text.replace(
        "/tasks/999999/", "/tasks/N/")
    assert C1_PHONE not in hidden.text


def test_a_supervisor_unmasks_only_a_task_she_is_working(open_client: Callable[..., TestClient], seed: Seed,
                                                          db_url: str) -> None:
    """Overseeing a task is not working it (SPEC §9: agents see masked PII; every view of unmasked PII is
    audited). Sue used to unmask any task of her team's agents, claimed by one of them or closed."""
    c = open_client()
    token = login(c, "sue")
    team_task = reveal(c, seed.tasks["bob"], token)  # bob's call in progress; bob is in sue's team a
    assert team_task.status_code == 403 and C1_PHONE not in team_task.text and C1_NAME not in team_task.text
    assert ("Only the person working this task, once they have claimed it, can reveal the customer's contact "
            "details.") in html.unescape(team_task.text)
    with session_scope(db_url) as s:
        closed = add_task(s, "t-bob-done", seed.customers["C1"], now=seed.now, due_in=timedelta(hours=1),
                          assignee_id=seed.users["bob"], status="done")
        sam = AppUser(username="sam", display_name="Sam", role="supervisor", team="b",
                      password_hash=password_hash(), created_at=seed.now)
        s.add(sam)
        s.flush()
        # An escalation claimed by another team's supervisor is visible to every supervisor, not unmaskable.
        escalation = add_task(s, "t-esc", seed.customers["C2"], now=seed.now, due_in=timedelta(hours=1),
                              assignee_id=sam.id, queue="supervisor", status="claimed")
    assert c.get(f"/tasks/{closed}").status_code == 200 and c.get(f"/tasks/{escalation}").status_code == 200
    for refused in (closed, escalation):
        response = reveal(c, refused, token)
        assert response.status_code == 403 and C1_PHONE not in response.text
    # The shared queue has no team yet: she sees it, but unmasks nothing there.
    queued = reveal(c, seed.tasks["free"], token)
    assert queued.status_code == 403 and C3_PHONE not in queued.text
    assert reveal(c, seed.tasks["cara"], token).status_code == 404  # team b
    assert 'data-testid="reveal"' not in c.get(f"/tasks/{seed.tasks['bob']}").text
    assert audit_rows(db_url, "reveal") == []
    assert [(r.target_id, r.detail["reason"]) for r in audit_rows(db_url, "reveal_refused")] == [
        (str(seed.tasks["bob"]), "reveal_not_working"), (str(closed), "reveal_not_working"),
        (str(escalation), "reveal_not_working"), (str(seed.tasks["free"]), "reveal_not_working"),
        (str(seed.tasks["cara"]), "task_not_found")]
    # To call bob's customer herself she takes the task: given to her, then claimed, the call is hers.
    moved = c.post(f"/tasks/{seed.tasks['bob']}/reassign",
                   data={"csrf_token": token, "to_user_id": str(seed.users["sue"]), "back": "/supervisor"},
                   follow_redirects=False)
    assert moved.status_code == 303
    assert reveal(c, seed.tasks["bob"], token).status_code == 403  # hers, not yet claimed
    claim(c, seed.tasks["bob"], token)
    shown = reveal(c, seed.tasks["bob"], token)
    assert shown.status_code == 200 and C1_PHONE in shown.text
    [row] = audit_rows(db_url, "reveal")
    assert (row.actor, row.target_id, row.detail["task_id"]) == ("sue", str(seed.customers["C1"]), seed.tasks["bob"])


def test_the_refusal_to_a_supervisor_is_in_words_in_chinese(open_client: Callable[..., TestClient],
                                                            seed: Seed, db_url: str) -> None:
    c = open_client()
    token = login(c, "sue")
    c.post("/me/locale", data={"csrf_token": token, "locale": "zh-CN", "back": "/"})
    refused = reveal(c, seed.tasks["bob"], token)
    assert refused.status_code == 403
    assert "只有已领取并正在处理此任务的人员才能查看客户的联系方式。" in refused.text
    assert "reveal_not_working" not in refused.text
    # And so is the refusal's reason on the admin's audit page.
    admin = open_client()
    admin_token = login(admin, "adam")
    admin.post("/me/locale", data={"csrf_token": admin_token, "locale": "zh-CN", "back": "/"})
    row = admin.get("/admin/audit", params={"kind": "all"}).text.split('data-action="reveal_refused"', 1)[1]
    assert "原因: 未在处理此任务</td>" in row.split("</tr>", 1)[0]


# --- the rate limit ------------------------------------------------------------------------------


def test_reveals_are_limited_per_rolling_hour(open_client: Callable[..., TestClient], seed: Seed, db_url: str,
                                              clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_REVEAL_LIMIT_PER_HOUR", "3")
    monkeypatch.setenv("JOURNEYS_SESSION_IDLE_MINUTES", "120")
    c = open_client()
    token = login(c, "ann")
    claim(c, seed.tasks["free"], token)
    for _ in range(3):
        assert reveal(c, seed.tasks["free"], token).status_code == 200
        clock.advance(minutes=10)
    refused = reveal(c, seed.tasks["free"], token)  # 30 minutes after the first
    assert refused.status_code == 429
    assert ("You have revealed contact details 3 times in the last hour, the most allowed. "
            "Try again in 30 minutes.") in refused.text
    assert refused.headers["retry-after"] == "1800"
    assert C3_PHONE not in refused.text and C3_MASKED_PHONE in refused.text
    assert len(audit_rows(db_url, "reveal")) == 3
    assert [r.detail for r in audit_rows(db_url, "reveal_refused")] == [{"reason": "reveal_limited"}]
    # The window rolls: when the first reveal is an hour old, one more is allowed, and only one.
    clock.advance(minutes=30, seconds=1)
    assert reveal(c, seed.tasks["free"], token).status_code == 200
    again = reveal(c, seed.tasks["free"], token)
    assert again.status_code == 429 and again.headers["retry-after"] == str(10 * 60 - 1)


def test_the_limit_is_shared_by_every_worker(open_client: Callable[..., TestClient],
                                             make_app: Callable[[], FastAPI], seed: Seed,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_REVEAL_LIMIT_PER_HOUR", "3")
    first, second = open_client(make_app()), open_client(make_app())
    token = login(first, "ann")
    claim(first, seed.tasks["free"], token)
    cookie = first.cookies.get(COOKIE)
    assert cookie
    second.cookies.set(COOKIE, cookie)  # the same session on another worker
    statuses = [reveal(worker, seed.tasks["free"], token).status_code for worker in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]


def test_the_limit_is_in_the_users_language(open_client: Callable[..., TestClient], seed: Seed,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_REVEAL_LIMIT_PER_HOUR", "1")
    c = open_client()
    token = login(c, "bob")  # zh-CN; his claimed task
    assert reveal(c, seed.tasks["bob"], token).status_code == 200
    refused = reveal(c, seed.tasks["bob"], token)
    assert refused.status_code == 429
    assert "您在过去一小时内已查看联系方式 1 次，已达上限。请 60 分钟后再试。" in refused.text


def test_reveals_sent_in_parallel_cannot_pass_the_limit(migrated_any_db: str) -> None:
    seed = seed_console(migrated_any_db)
    ann = user(migrated_any_db, "ann")
    tasks.claim(ann, seed.tasks["free"], db_url=migrated_any_db)
    policy = tasks.RevealPolicy(limit=4)

    def attempt(_i: int) -> str:
        try:
            tasks.reveal(ann, seed.tasks["free"], policy=policy, db_url=migrated_any_db)
        except tasks.RevealLimited:
            return "limited"
        return "shown"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = sorted(pool.map(attempt, range(12)))
    assert outcomes == ["limited"] * 8 + ["shown"] * 4
    assert len(audit_rows(migrated_any_db, "reveal")) == 4
    assert len(audit_rows(migrated_any_db, "reveal_refused")) == 8


# --- bursts --------------------------------------------------------------------------------------


def test_a_burst_is_flagged_on_the_audit_page_and_to_the_teams_supervisor(
        open_client: Callable[..., TestClient], seed: Seed, clock: FakeClock, db_url: str,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("JOURNEYS_REVEAL_BURST_COUNT", "3")
    monkeypatch.setenv("JOURNEYS_REVEAL_BURST_MINUTES", "10")
    ann, bob, cara = open_client(), open_client(), open_client()
    ann_token, bob_token, cara_token = login(ann, "ann"), login(bob, "bob"), login(cara, "cara")
    claim(ann, seed.tasks["free"], ann_token)
    with caplog.at_level(logging.WARNING, logger="console.tasks"):
        for _ in range(3):  # three within four minutes: a burst
            assert reveal(ann, seed.tasks["free"], ann_token).status_code == 200
            clock.advance(minutes=2)
    assert [r.getMessage() for r in caplog.records if r.name == "console.tasks"] == [
        "reveal burst: user ann unmasked 3 customers within 10 minutes"]
    for _ in range(2):  # bob stays under the threshold
        assert reveal(bob, seed.tasks["bob"], bob_token).status_code == 200
    for task_id in (seed.tasks["ann_first"], seed.tasks["bob"], 4242, 4243):  # cara probes ids not hers
        assert reveal(cara, task_id, cara_token).status_code == 404

    admin = open_client()
    login(admin, "adam")
    page = admin.get("/admin/audit")
    assert page.status_code == 200
    bursts = page.text.split('data-testid="bursts"')[1].split("</table>")[0]
    # ann: three reveals in one window; cara: four refused tries (probing counts as much as unmasking).
    assert 'data-actor="ann" data-peak="3" data-reveals="3" data-refused="0"' in bursts
    assert 'data-actor="cara" data-peak="4" data-reveals="0" data-refused="4"' in bursts
    assert 'data-actor="bob"' not in bursts
    rows = page.text.split('data-testid="audit-rows"')[1]
    assert rows.count('data-action="reveal"') == 5 and rows.count('data-action="reveal_refused"') == 4
    assert 'data-action="login"' not in rows  # unmasking events only, unless asked for all
    assert 'data-action="login"' in admin.get("/admin/audit?kind=all").text
    only_bob = admin.get("/admin/audit?actor=bob").text.split('data-testid="audit-rows"')[1]
    assert only_bob.count('data-action="reveal"') == 2 and "ann" not in only_bob

    sue = open_client()
    login(sue, "sue")
    team = sue.get("/supervisor").text
    assert 'data-testid="reveal-bursts"' in team
    assert 'data-actor="ann"' in team and 'data-actor="cara"' not in team  # cara is team b's business


def test_reveals_spread_out_are_not_a_burst(open_client: Callable[..., TestClient], seed: Seed, clock: FakeClock,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_REVEAL_BURST_COUNT", "3")
    monkeypatch.setenv("JOURNEYS_REVEAL_BURST_MINUTES", "10")
    c = open_client()
    token = login(c, "ann")
    claim(c, seed.tasks["free"], token)
    for _ in range(4):  # four calls, each 6 minutes apart: never three within ten minutes
        assert reveal(c, seed.tasks["free"], token).status_code == 200
        clock.advance(minutes=5, seconds=30)
    admin = open_client()
    login(admin, "adam")
    page = admin.get("/admin/audit").text
    assert 'data-testid="no-bursts"' in page and page.count('data-action="reveal"') == 4
    sue = open_client()
    login(sue, "sue")
    assert 'data-testid="reveal-bursts"' not in sue.get("/supervisor").text


def test_the_audit_page_masks_what_people_typed(open_client: Callable[..., TestClient], db_url: str) -> None:
    c = open_client()
    token = csrf_of(c.get("/login").text)
    # Someone types a phone number into the user name field: it is stored as the failed login's actor.
    c.post("/login", data={"username": "13812345678", "password": PASSWORD, "csrf_token": token})
    [row] = audit_rows(db_url, "login_failed")
    assert row.actor == "13812345678"
    admin = open_client()
    login(admin, "adam")
    page = admin.get("/admin/audit?kind=all").text
    assert "138****5678" in page and "13812345678" not in page
