"""Agents' skills (languages, product lines, health/life licences): required by queues and task types,
honoured by the inbox, the claim and every assignment strategy, and edited on the admin users page.

Before, routing knew only "the team named after the queue".
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from console import tasks
from console.assignment import assign_open_tasks
from store.db import session_scope
from store.models import AgentTask, AppUser, AuditLog, Customer
from tests.console.conftest import Seed, add_task, add_user, login, user


def assignee(url: str, task_id: int) -> int | None:
    with session_scope(url) as s:
        return s.get(AgentTask, task_id).assignee_id  # type: ignore[union-attr]


@pytest.fixture
def quiet_seed(db_url: str, seed: Seed) -> Seed:
    """The seed with its own agents off shift, so that only the agents a test adds take work."""
    with session_scope(db_url) as s:
        for name in ("ann", "bob", "cara"):
            row = s.exec(select(AppUser).where(AppUser.username == name)).one()
            row.on_shift = False
            s.add(row)
    return seed


@pytest.mark.parametrize("strategy", ["least_loaded", "round_robin"])
def test_a_licence_the_queue_requires_decides_who_gets_the_task(db_url: str, quiet_seed: Seed,
                                                                strategy: str) -> None:
    seed = quiet_seed
    plain = add_user(db_url, "plain", "health_booking")
    licensed = add_user(db_url, "licensed", "health_booking", skills=["licence:health"])
    with session_scope(db_url) as s:
        booking = [add_task(s, f"hb-{i}", seed.customers["C1"], now=seed.now, due_in=timedelta(hours=3 + i),
                            queue="health_booking", journey_id="claim-settled-health-consultation")
                   for i in range(3)]
        # plain is idle, licensed is busy: least-loaded alone would pick plain every time.
        for i in range(5):
            add_task(s, f"busy-{i}", seed.customers["C3"], now=seed.now, due_in=timedelta(days=2),
                     assignee_id=licensed, queue="health_booking")
    assign_open_tasks(strategy=strategy, db_url=db_url)
    assert [assignee(db_url, t) for t in booking] == [licensed] * 3
    assert plain not in [assignee(db_url, t) for t in booking]


def test_without_a_skilled_agent_on_shift_the_task_waits_in_the_pool(db_url: str, quiet_seed: Seed) -> None:
    add_user(db_url, "plain", "health_booking")
    add_user(db_url, "away", "health_booking", skills=["licence:health"], on_shift=False)
    with session_scope(db_url) as s:
        booking = add_task(s, "hb", quiet_seed.customers["C1"], now=quiet_seed.now, due_in=timedelta(hours=3),
                           queue="health_booking")
    assign_open_tasks(db_url=db_url)
    assert assignee(db_url, booking) is None
    # ... and only a licensed agent sees it there, or may claim it.
    assert booking not in [r.id for r in tasks.inbox(user(db_url, "plain"), db_url=db_url).claimable]
    with pytest.raises(tasks.TaskNotFound):
        tasks.claim(user(db_url, "plain"), booking, db_url=db_url)
    assert booking in [r.id for r in tasks.inbox(user(db_url, "away"), db_url=db_url).claimable]


def test_complaints_go_to_an_agent_who_speaks_the_customers_language(db_url: str, quiet_seed: Seed) -> None:
    seed = quiet_seed
    chinese = add_user(db_url, "li", "complaints")  # lists no language: the default, zh-CN
    english = add_user(db_url, "kate", "complaints", skills=["lang:en", "lang:zh-CN"])
    with session_scope(db_url) as s:
        c3 = s.get(Customer, seed.customers["C3"])
        assert c3 is not None
        c3.locale = "en-GB"
        s.add(c3)
        for i in range(3):  # kate is busier: least-loaded would give the next one to li
            add_task(s, f"busy-{i}", seed.customers["C1"], now=seed.now, due_in=timedelta(days=1),
                     assignee_id=english, queue="complaints")
        from_english = add_task(s, "en", seed.customers["C3"], now=seed.now, due_in=timedelta(hours=2),
                                queue="complaints", journey_id="complaint-response")
        from_chinese = add_task(s, "zh", seed.customers["C1"], now=seed.now, due_in=timedelta(hours=3),
                                queue="complaints", journey_id="complaint-response")
    assert from_english not in [r.id for r in tasks.inbox(user(db_url, "li"), db_url=db_url).claimable]
    assign_open_tasks(db_url=db_url)
    assert (assignee(db_url, from_english), assignee(db_url, from_chinese)) == (english, chinese)


def test_a_task_type_may_require_a_skill(db_url: str, quiet_seed: Seed, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "queues.yaml").write_text(
        "task_types:\n  renewal-reminder/agent_callback:\n    requires: [licence:life, product:life]\n",
        encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    add_user(db_url, "rita", "renewal")
    add_user(db_url, "lars", "renewal", skills=["licence:life", "product:life"])
    with session_scope(db_url) as s:
        renewal = add_task(s, "ren", quiet_seed.customers["C1"], now=quiet_seed.now, due_in=timedelta(days=2),
                           queue="renewal", journey_id="renewal-reminder")
        s.get(AgentTask, renewal).step_id = "agent_callback"  # type: ignore[union-attr]
    assert renewal not in [r.id for r in tasks.inbox(user(db_url, "rita"), db_url=db_url).claimable]
    assert renewal in [r.id for r in tasks.inbox(user(db_url, "lars"), db_url=db_url).claimable]
    assign_open_tasks(db_url=db_url)
    assert assignee(db_url, renewal) == user(db_url, "lars").id


def test_the_admin_edits_skills_on_the_users_page(client: TestClient, db_url: str, seed: Seed) -> None:
    token = login(client, "adam")
    page = client.get("/admin/users").text
    assert 'data-testid="skills-ann"' in page and "Licensed for health" in page
    saved = client.post(f"/admin/users/{seed.users['ann']}/skills", follow_redirects=False,
                        data={"csrf_token": token, "skill": ["licence:health", "lang:en"]})
    assert saved.status_code == 303
    with session_scope(db_url) as s:
        ann = s.get(AppUser, seed.users["ann"])
        assert ann is not None and ann.skills == ["lang:en", "licence:health"]
        row = s.exec(select(AuditLog).where(AuditLog.action == "user_skills")).one()
        assert row.actor == "adam" and row.detail == {"before": [], "after": ["lang:en", "licence:health"]}
    shown = client.get("/admin/users").text.split('data-testid="skills-ann"', 1)[1].split("</summary>", 1)[0]
    assert "Speaks English" in shown and "Licensed for health" in shown
    refused = client.post(f"/admin/users/{seed.users['ann']}/skills",
                          data={"csrf_token": token, "skill": ["licence:flying"]}, follow_redirects=False)
    # Back to the users page with a message naming the field (console.form_errors), not a bare 422.
    assert refused.status_code == 303 and refused.headers["location"] == "/admin/users"
    assert "Skills: this value cannot be used." in client.get("/admin/users").text
    with session_scope(db_url) as s:
        assert s.get(AppUser, seed.users["ann"]).skills == ["lang:en", "licence:health"]  # type: ignore[union-attr]
    added = client.post("/admin/users", follow_redirects=False, data={
        "csrf_token": token, "username": "nina", "password": "long-enough-1", "role": "agent", "team": "claims",
        "skill": ["product:motor"]})
    assert added.status_code == 303
    with session_scope(db_url) as s:
        assert s.exec(select(AppUser).where(AppUser.username == "nina")).one().skills == ["product:motor"]
    # A skill the vocabulary does not have is refused as on the skills form, not dropped without a word.
    refused = client.post("/admin/users", follow_redirects=False, data={
        "csrf_token": token, "username": "omar", "password": "long-enough-1", "role": "agent", "team": "claims",
        "skill": ["product:motor", "licence:flying"]})
    assert refused.status_code == 303 and refused.headers["location"] == "/admin/users"
    assert "Skills: this value cannot be used." in client.get("/admin/users").text
    with session_scope(db_url) as s:
        assert s.exec(select(AppUser).where(AppUser.username == "omar")).first() is None
