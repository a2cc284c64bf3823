"""The task service: inbox order, claiming, outcomes feeding the journey, reassignment, reveal, rights."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from console import supervision, task_outcomes, tasks
from console.i18n import Translator
from console.routes_tasks import ERROR_MESSAGES
from store.clock import utcnow
from store.db import session_scope
from store.models import AgentTask, AuditLog, Customer, Event, Outcome
from tests.console.conftest import Seed, add_task, login, seed_console, user
from tests.db_support import stored_rows


def test_inbox_lists_my_tasks_and_the_claimable_queue_in_due_order(db_url: str, seed: Seed) -> None:
    ann = user(db_url, "ann")
    box = tasks.inbox(ann, db_url=db_url)
    assert [r.id for r in box.mine] == [seed.tasks["ann_first"], seed.tasks["ann_second"]]
    assert [r.id for r in box.claimable] == [seed.tasks["free"]]
    assert box.mine_count == 2 and box.claimable_count == 1 and box.mine_overdue == 0
    assert box.mine[0].customer == "张**"  # masked in lists
    later = tasks.inbox(ann, now=seed.now + timedelta(hours=3), db_url=db_url)
    assert later.mine[0].overdue and not later.mine[1].overdue and later.mine_overdue == 1


def test_claim_is_won_by_exactly_one_agent(db_url: str, seed: Seed) -> None:
    ann, bob = user(db_url, "ann"), user(db_url, "bob")
    tasks.claim(ann, seed.tasks["free"], db_url=db_url)
    with pytest.raises(tasks.TaskError) as refused:
        tasks.claim(bob, seed.tasks["free"], db_url=db_url)
    # 404 once ann holds it (no longer bob's to see), 409 if she won between his read and his write.
    assert refused.value.status in (404, 409)
    with session_scope(db_url) as s:
        task = s.get(AgentTask, seed.tasks["free"])
        assert task is not None and task.status == "claimed" and task.assignee_id == ann.id
        assert task.claimed_at is not None


def test_an_agent_cannot_see_or_work_another_agents_task(db_url: str, seed: Seed) -> None:
    ann = user(db_url, "ann")
    # Not found, exactly as for an id that does not exist: the refusal must not confirm the task is there.
    for task_id in (seed.tasks["bob"], 999_999):
        for action in (
            lambda tid: tasks.detail(ann, tid, db_url=db_url),
            lambda tid: tasks.reveal(ann, tid, db_url=db_url),
            lambda tid: tasks.complete(ann, tid, "reached", db_url=db_url),
            lambda tid: tasks.claim(ann, tid, db_url=db_url),
        ):
            with pytest.raises(tasks.TaskNotFound) as refused:
                action(task_id)
            assert refused.value.code == "task_not_found"


def test_task_detail_shows_context_masked_and_reveal_is_audited(db_url: str, seed: Seed) -> None:
    ann = user(db_url, "ann")
    info = tasks.detail(ann, seed.tasks["ann_first"], db_url=db_url)
    assert info.customer["phone"] == "138****5678" and info.customer["email"] == "s***@example.com"
    assert info.customer["name"] == "张**" and info.customer["tier"] == "gold"
    assert [p["external_id"] for p in info.policies] == ["P1"]
    assert info.script and "张**" in info.script and "张三丰" not in info.script
    assert not info.can_reveal  # assigned to her but not claimed yet: not a call in progress
    tasks.claim(ann, seed.tasks["ann_first"], db_url=db_url)
    assert tasks.detail(ann, seed.tasks["ann_first"], db_url=db_url).can_reveal
    shown = tasks.reveal(ann, seed.tasks["ann_first"], db_url=db_url)
    assert shown == {"name": "张三丰", "phone": "+8613812345678", "email": "sanfeng@example.com"}
    with session_scope(db_url) as s:
        rows = s.exec(select(AuditLog).where(AuditLog.action == "reveal")).all()
        assert [(r.actor, r.target_type, r.target_id) for r in rows] == [
            ("ann", "customer", str(seed.customers["C1"]))
        ]
        assert rows[0].detail["task_id"] == seed.tasks["ann_first"]


def _events(url: str, type_: str) -> list[Event]:
    return stored_rows(url, Event, type=type_)


def test_reached_closes_the_task_with_an_outcome_row_and_a_task_completed_event(db_url: str, seed: Seed) -> None:
    ann = user(db_url, "ann")
    done = tasks.complete(ann, seed.tasks["ann_first"], "reached", notes="客户满意", db_url=db_url)
    assert done.follow_up_task_id is None
    assert done.next_task_id == seed.tasks["ann_second"]  # the next one is offered at once
    with session_scope(db_url) as s:
        task = s.get(AgentTask, seed.tasks["ann_first"])
        assert task is not None and task.status == "done" and task.outcome_code == "reached"
        assert task.completed_at is not None and task.claimed_at is not None and task.notes == "客户满意"
        outcome = s.exec(select(Outcome).where(Outcome.task_id == task.id)).one()
        assert outcome.kind == "task:reached" and outcome.customer_id == seed.customers["C1"]
        assert outcome.detail["within_sla"] is True and outcome.detail["agent"] == "ann"
    [event] = _events(db_url, "task.completed")
    # The journey, step and occurrence the task came from: the wait_for that hears it is that enrollment's.
    assert event.data == {"task_id": seed.tasks["ann_first"], "outcome": "reached", "queue": "callbacks",
                          "journey": "gold-monthly-callback", "step": "call", "occurrence": "2026-11"}
    with pytest.raises(tasks.TaskConflict):
        tasks.complete(ann, seed.tasks["ann_first"], "resolved", db_url=db_url)


def test_no_answer_retries_after_four_hours_at_most_three_attempts_in_all(db_url: str, seed: Seed) -> None:
    ann = user(db_url, "ann")
    now = seed.now
    task_id = seed.tasks["ann_first"]
    chain = [task_id]
    for attempt in (1, 2, 3):
        done = tasks.complete(ann, chain[-1], "no_answer", now=now, db_url=db_url)
        if attempt < 3:
            assert done.follow_up_task_id is not None
            with session_scope(db_url) as s:
                retry = s.get(AgentTask, done.follow_up_task_id)
                assert retry is not None and retry.attempt == attempt + 1 and retry.status == "open"
                assert retry.due_at == now + timedelta(hours=4) and retry.assignee_id == ann.id
                assert retry.parent_task_id == chain[-1]
            chain.append(done.follow_up_task_id)
            now = now + timedelta(hours=4, minutes=5)
        else:
            assert done.follow_up_task_id is None
    with session_scope(db_url) as s:
        kinds = [o.detail["attempts_exhausted"] for o in s.exec(select(Outcome).order_by(col(Outcome.id))).all()]
        assert kinds == [False, False, True]
        assert len(s.exec(select(AgentTask).where(AgentTask.journey_id == "gold-monthly-callback",
                                                  AgentTask.customer_id == seed.customers["C1"])).all()) == 4


def test_call_back_schedules_a_task_at_the_agreed_time(db_url: str, seed: Seed) -> None:
    ann = user(db_url, "ann")
    with pytest.raises(tasks.TaskInvalid):
        tasks.complete(ann, seed.tasks["ann_first"], "call_back", db_url=db_url)
    with pytest.raises(tasks.TaskInvalid):
        tasks.complete(ann, seed.tasks["ann_first"], "call_back", callback_at=utcnow() - timedelta(hours=1),
                       db_url=db_url)
    when = utcnow() + timedelta(days=1)
    done = tasks.complete(ann, seed.tasks["ann_first"], "call_back", callback_at=when, db_url=db_url)
    with session_scope(db_url) as s:
        follow = s.get(AgentTask, done.follow_up_task_id)
        assert follow is not None and follow.due_at == when and follow.assignee_id == ann.id


def test_complaint_raised_emits_complaint_filed_for_the_complaint_journey(db_url: str, seed: Seed) -> None:
    ann = user(db_url, "ann")
    tasks.complete(ann, seed.tasks["ann_first"], "complaint_raised", notes="客户来电 13812345678 投诉理赔慢",
                   db_url=db_url)
    [event] = _events(db_url, "complaint.filed")
    assert event.customer_id == seed.customers["C1"]
    assert event.external_id == f"complaint.filed:task:{seed.tasks['ann_first']}"
    assert event.data["source"] == "agent_task"
    assert "13812345678" not in event.data["text"] and "138****5678" in event.data["text"]


def test_resolved_on_a_complaint_task_emits_complaint_resolved(db_url: str, seed: Seed) -> None:
    ann = user(db_url, "ann")
    with session_scope(db_url) as s:
        from tests.console.conftest import add_task

        tid = add_task(s, "t-complaint", seed.customers["C1"], now=seed.now, due_in=timedelta(hours=20),
                       assignee_id=ann.id, queue="complaints", journey_id="complaint-response")
    tasks.complete(ann, tid, "resolved", db_url=db_url)
    [event] = _events(db_url, "complaint.resolved")
    assert event.data == {"task_id": tid}
    with session_scope(db_url) as s:
        outcome = s.exec(select(Outcome).where(Outcome.task_id == tid)).one()
        assert outcome.kind == "task:resolved" and outcome.detail["completed_at"] and outcome.detail["created_at"]


def test_renewal_intent_is_kept_on_the_customer(db_url: str, seed: Seed) -> None:
    ann = user(db_url, "ann")
    with session_scope(db_url) as s:
        renewal = add_task(s, "t-renewal", seed.customers["C1"], now=seed.now, due_in=timedelta(days=2),
                           assignee_id=seed.users["ann"], queue="renewal", journey_id="renewal-reminder")
    tasks.complete(ann, renewal, "renewal_yes", db_url=db_url)
    with session_scope(db_url) as s:
        customer = s.get(Customer, seed.customers["C1"])
        assert customer is not None and customer.attributes["renewal_intent"] is True


def test_supervisor_reassigns_within_the_team_only(db_url: str, seed: Seed) -> None:
    sue = user(db_url, "sue")
    tasks.reassign(sue, seed.tasks["bob"], seed.users["ann"], db_url=db_url)
    with session_scope(db_url) as s:
        task = s.get(AgentTask, seed.tasks["bob"])
        assert task is not None and task.assignee_id == seed.users["ann"] and task.status == "open"
        assert s.exec(select(AuditLog).where(AuditLog.action == "reassign")).one().actor == "sue"
    with pytest.raises(tasks.TaskNotFound):
        tasks.reassign(sue, seed.tasks["cara"], seed.users["ann"], db_url=db_url)  # team b's task: not hers to see
    # The task is hers to give, the agent is team b's: a wrong choice (422 with its words), not a right she lacks.
    with pytest.raises(tasks.TaskInvalid) as invalid:
        tasks.reassign(sue, seed.tasks["ann_first"], seed.users["cara"], db_url=db_url)
    assert (invalid.value.status, invalid.value.code) == (422, "other_team")
    assert str(invalid.value) == "the agent chosen is in another team: choose an agent of your team"
    # What the desk shows for it, in words in either language.
    shown = ERROR_MESSAGES[invalid.value.code]
    assert (Translator("en")(shown), Translator("zh-CN")(shown)) == ("Choose an agent of your team.",
                                                                      "请选择本团队的坐席。")
    with session_scope(db_url) as s:
        assert s.get(AgentTask, seed.tasks["ann_first"]).assignee_id == seed.users["ann"]  # type: ignore[union-attr]
    with pytest.raises(tasks.TaskForbidden):
        tasks.reassign(user(db_url, "ann"), seed.tasks["ann_first"], seed.users["bob"], db_url=db_url)


def test_team_load_and_overdue_list(db_url: str, seed: Seed) -> None:
    sue = user(db_url, "sue")
    later = seed.now + timedelta(hours=4)
    loads = {a.name: a for a in supervision.agent_figures(sue, now=later, db_url=db_url)}
    assert set(loads) == {"Ann", "Bob", "Sue"}  # team a only
    assert (loads["Ann"].open, loads["Ann"].overdue) == (2, 1) and loads["Bob"].claimed == 1
    rows, _more = supervision.worklist(sue, supervision.WorkFilter(state="overdue"), now=later, db_url=db_url)
    overdue = [r.id for r in rows]
    # Team a's overdue tasks and the unassigned queue, not team b's.
    assert overdue == [seed.tasks["free"], seed.tasks["ann_first"], seed.tasks["bob"]]


@pytest.mark.postgres
def test_claim_and_complete_on_postgresql(migrated_any_db: str) -> None:
    seed = seed_console(migrated_any_db)
    ann, bob = user(migrated_any_db, "ann"), user(migrated_any_db, "bob")
    tasks.claim(ann, seed.tasks["free"], db_url=migrated_any_db)
    with pytest.raises(tasks.TaskError):
        tasks.claim(bob, seed.tasks["free"], db_url=migrated_any_db)
    done = tasks.complete(ann, seed.tasks["free"], "no_answer", db_url=migrated_any_db)
    assert done.follow_up_task_id is not None
    assert [e.type for e in _events(migrated_any_db, "task.completed")] == ["task.completed"]


def test_task_page_404_for_another_agents_task_exactly_as_for_a_missing_one(client: TestClient, seed: Seed) -> None:
    token = login(client, "ann")
    assert client.get(f"/tasks/{seed.tasks['ann_first']}").status_code == 200
    hidden, missing = seed.tasks["bob"], 999_999
    requests = {
        "page": lambda tid: client.get(f"/tasks/{tid}"),
        "reveal": lambda tid: client.post(f"/tasks/{tid}/reveal", data={"csrf_token": token}),
        "complete": lambda tid: client.post(f"/tasks/{tid}/complete",
                                            data={"csrf_token": token, "outcome": "reached"}, follow_redirects=False),
    }
    for name, send in requests.items():
        a, b = send(hidden), send(missing)
        # Same status and same page: nothing tells an id that exists from one that does not.
        assert (a.status_code, b.status_code) == (404, 404), name
        # Only the address differs (the page echoes it in the language switch).
        assert a.text.replace(f"/tasks/{hidden}", "/tasks/N") == b.text.replace(f"/tasks/{missing}", "/tasks/N"), name
        assert "张三丰" not in a.text and "13812345678" not in a.text
    # Claiming sends her back to her inbox with the same word for both (a colleague's claim may have just
    # taken a task from her: tests/console/test_claim_race.py).
    claims = [client.post(f"/tasks/{tid}/claim", data={"csrf_token": token}, follow_redirects=False)
              for tid in (hidden, missing)]
    assert [(c.status_code, c.headers["location"]) for c in claims] == [(303, "/inbox")] * 2


def test_reassign_answers_404_for_another_teams_task_exactly_as_for_a_missing_one(client: TestClient,
                                                                                   seed: Seed) -> None:
    token = login(client, "sue")
    form = {"csrf_token": token, "to_user_id": str(seed.users["ann"]), "back": "/supervisor"}
    other_team = client.post(f"/tasks/{seed.tasks['cara']}/reassign", data=form, follow_redirects=False)
    missing = client.post("/tasks/999999/reassign", data=form, follow_redirects=False)
    assert (other_team.status_code, missing.status_code) == (404, 404)
    assert other_team.text.replace(f"/tasks/{seed.tasks['cara']}/", "/tasks/N/") == missing.text.replace(
        "/tasks/999999/", "/tasks/N/")


def test_a_reassignment_to_another_teams_agent_comes_back_with_the_reason(client: TestClient, seed: Seed,
                                                                           db_url: str) -> None:
    """The form lists the team's agents only; a crafted form, or an agent who changed team since the page
    was drawn, answered the 403 page instead of the words the desk has for it."""
    token = login(client, "sue")
    form = {"csrf_token": token, "to_user_id": str(seed.users["cara"]), "back": "/supervisor"}
    answer = client.post(f"/tasks/{seed.tasks['ann_first']}/reassign", data=form, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/supervisor")
    assert "Choose an agent of your team." in client.get("/supervisor").text
    client.post("/me/locale", data={"csrf_token": token, "locale": "zh-CN", "back": "/"})
    answer = client.post(f"/tasks/{seed.tasks['ann_first']}/reassign", data=form, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/supervisor")
    page = client.get("/supervisor").text
    assert "请选择本团队的坐席。" in page and "other_team" not in page
    with session_scope(db_url) as s:
        assert s.get(AgentTask, seed.tasks["ann_first"]).assignee_id == seed.users["ann"]  # type: ignore[union-attr]


def test_the_task_api_answers_404_for_another_agents_task_exactly_as_for_a_missing_one(client: TestClient, seed: Seed,
                                                                                       db_url: str) -> None:
    acting = {"X-CSRF-Token": login(client, "ann")}  # her signed-in console calling the API
    for action, body in (("claim", None), ("complete", {"outcome": "reached"})):
        hidden = client.post(f"/api/tasks/{seed.tasks['bob']}/{action}", headers=acting, json=body)
        missing = client.post(f"/api/tasks/999999/{action}", headers=acting, json=body)
        assert (hidden.status_code, missing.status_code) == (404, 404), action
        assert hidden.json() == missing.json() == {"detail": "task_not_found"}
    with session_scope(db_url) as s:
        task = s.get(AgentTask, seed.tasks["bob"])
        assert task is not None and task.status == "claimed" and task.assignee_id == seed.users["bob"]


def test_the_task_page_counts_attempts_against_the_limit_the_outcomes_use(client: TestClient, seed: Seed,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    login(client, "ann")
    assert "1 of 3" in client.get(f"/tasks/{seed.tasks['ann_first']}").text
    monkeypatch.setattr(task_outcomes, "MAX_ATTEMPTS", 5)
    monkeypatch.setattr(tasks, "MAX_ATTEMPTS", 5)
    assert "1 of 5" in client.get(f"/tasks/{seed.tasks['ann_first']}").text
