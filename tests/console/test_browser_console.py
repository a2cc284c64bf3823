"""The console in real Chromium against a real uvicorn server: the agent's and supervisor's day."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from store.db import session_scope
from store.models import AgentTask, AuditLog
from tests.console.conftest import PageFactory, Seed, add_task

pytestmark = pytest.mark.browser

playwright_sync = pytest.importorskip("playwright.sync_api")


def test_agent_claims_completes_with_an_outcome_and_sees_the_next_task(new_page: PageFactory, seed: Seed,
                                                                       db_url: str) -> None:
    page = new_page("ann")
    expect = playwright_sync.expect
    expect(page.get_by_test_id("claimable").locator(f"tr[data-task-id='{seed.tasks['free']}']")).to_be_visible()
    page.get_by_test_id(f"claim-{seed.tasks['free']}").click()
    page.wait_for_url(f"**/tasks/{seed.tasks['free']}")
    expect(page.get_by_role("status").first).to_have_text("Task claimed.")
    expect(page.get_by_test_id("assignee")).to_have_text("Ann")
    expect(page.get_by_test_id("customer-name")).to_have_text("王*")
    page.fill("textarea[name=notes]", "Reached, all fine")
    page.get_by_test_id("outcome-reached").click()
    # "Reached" closes the task: asked once more, with the notes kept, before it is recorded.
    expect(page.get_by_test_id("confirm")).to_contain_text("Reached, all fine")
    with session_scope(db_url) as s:
        assert s.get(AgentTask, seed.tasks["free"]).status == "claimed"  # type: ignore[union-attr]
    page.get_by_test_id("confirm-outcome").click()
    # Straight on to the next most urgent task of hers.
    page.wait_for_url(f"**/tasks/{seed.tasks['ann_first']}")
    expect(page.locator("h1")).to_contain_text(f"Task {seed.tasks['ann_first']}")
    expect(page.get_by_role("status").first).to_have_text("Outcome recorded.")
    with session_scope(db_url) as s:
        done = s.get(AgentTask, seed.tasks["free"])
        assert done is not None and done.status == "done" and done.outcome_code == "reached"
        assert done.notes == "Reached, all fine"
    page.goto("/inbox")
    mine = page.get_by_test_id("my-tasks")
    expect(mine.locator("tr[data-task-id]")).to_have_count(2)
    expect(page.get_by_test_id("claimable").locator("tr[data-task-id]")).to_have_count(0)


def test_no_answer_schedules_a_retry_visible_in_the_inbox(new_page: PageFactory, seed: Seed) -> None:
    page = new_page("ann")
    page.goto(f"/tasks/{seed.tasks['ann_second']}")
    page.get_by_test_id("claim").click()
    # No answer closes nothing (a retry follows): recorded at once, no confirmation.
    page.get_by_test_id("outcome-no_answer").click()
    page.wait_for_url("**/tasks/*")
    page.goto("/inbox")
    expect = playwright_sync.expect
    expect(page.get_by_test_id("my-tasks")).to_contain_text("attempt 2")


def test_supervisor_reassigns_a_task(new_page: PageFactory, seed: Seed, db_url: str) -> None:
    sup = new_page("sue")
    expect = playwright_sync.expect
    sup.goto("/supervisor")
    expect(sup.get_by_test_id("team-load")).to_contain_text("Bob")
    sup.get_by_test_id(f"agent-{seed.users['bob']}").click()
    row = sup.get_by_test_id("team-tasks").locator(f"tr[data-task-id='{seed.tasks['bob']}']")
    expect(row).to_be_visible()
    sup.get_by_test_id(f"reassign-select-{seed.tasks['bob']}").select_option(str(seed.users["ann"]))
    sup.get_by_test_id(f"reassign-{seed.tasks['bob']}").click()
    expect(sup.get_by_role("status").first).to_have_text("Task reassigned.")
    expect(sup.get_by_test_id("team-tasks").locator("tr[data-task-id]")).to_have_count(0)
    with session_scope(db_url) as s:
        task = s.get(AgentTask, seed.tasks["bob"])
        assert task is not None and task.assignee_id == seed.users["ann"]
    agent = new_page("ann")
    expect(agent.get_by_test_id("my-tasks").locator(f"tr[data-task-id='{seed.tasks['bob']}']")).to_be_visible()


def test_agent_gets_404_on_another_agents_task_and_pii_is_masked_until_an_audited_reveal_of_a_claimed_task(
    new_page: PageFactory, seed: Seed, db_url: str
) -> None:
    page = new_page("ann")
    expect = playwright_sync.expect
    # Not found, as for an id that does not exist: the answer does not confirm the task is there.
    response = page.goto(f"/tasks/{seed.tasks['bob']}")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    assert "13812345678" not in page.content()

    page.goto(f"/tasks/{seed.tasks['ann_first']}")
    expect(page.get_by_test_id("customer-phone")).to_have_text("138****5678")
    expect(page.get_by_test_id("customer-email")).to_have_text("s***@example.com")
    expect(page.get_by_test_id("customer-name")).to_have_text("张**")
    html = page.content()
    assert "13812345678" not in html and "sanfeng@" not in html and "张三丰" not in html
    # Assigned to her but not claimed: no call in progress, so nothing to unmask yet.
    expect(page.get_by_test_id("reveal")).to_have_count(0)
    expect(page.get_by_test_id("reveal-hint")).to_be_visible()
    page.get_by_test_id("claim").click()
    expect(page.get_by_role("status").first).to_have_text("Task claimed.")
    with session_scope(db_url) as s:
        assert s.exec(select(AuditLog).where(AuditLog.action == "reveal")).first() is None

    page.get_by_test_id("reveal").click()
    expect(page.get_by_test_id("customer-phone")).to_have_text("+8613812345678")
    expect(page.get_by_test_id("customer-name")).to_have_text("张三丰")
    expect(page.get_by_test_id("revealed-note")).to_be_visible()
    with session_scope(db_url) as s:
        [row] = s.exec(select(AuditLog).where(AuditLog.action == "reveal")).all()
        assert row.actor == "ann" and row.target_type == "customer"
        assert row.target_id == str(seed.customers["C1"]) and row.detail["task_id"] == seed.tasks["ann_first"]
    # Reloading the task shows masked data again: the reveal is per view, not remembered.
    page.goto(f"/tasks/{seed.tasks['ann_first']}")
    expect(page.get_by_test_id("customer-phone")).to_have_text("138****5678")


@pytest.mark.parametrize("width", [1280, 390])
def test_admin_audit_page_flags_a_burst_of_reveals_at_desktop_and_phone_width(
    new_page: PageFactory, seed: Seed, db_url: str, width: int
) -> None:
    now = seed.now
    with session_scope(db_url) as s:
        # Twelve reveals by ann within six minutes (over the default ten in ten minutes), two by bob.
        for i in range(12):
            s.add(AuditLog(actor="ann", action="reveal", target_type="customer", target_id=str(seed.customers["C3"]),
                           detail={"task_id": seed.tasks["free"], "fields": ["name", "phone", "email"]},
                           at=now - timedelta(minutes=30 - i // 2)))
        for i in range(2):
            s.add(AuditLog(actor="bob", action="reveal", target_type="customer", target_id=str(seed.customers["C1"]),
                           detail={"task_id": seed.tasks["bob"]}, at=now - timedelta(minutes=5 + i)))
    page = new_page("adam", {"viewport": {"width": width, "height": 900}}, lands_on="**/admin/users")
    page.get_by_test_id("nav-audit").click()
    page.wait_for_url("**/admin/audit")
    expect = playwright_sync.expect
    expect(page.locator("h1")).to_have_text("Audit log")
    bursts = page.get_by_test_id("bursts")
    expect(bursts.locator("tr[data-actor]")).to_have_count(1)
    expect(bursts.locator("tr[data-actor='ann']")).to_contain_text("12")
    expect(page.get_by_test_id("audit-rows").locator("tr[data-flagged]")).to_have_count(12)
    expect(page.get_by_test_id("audit-rows").locator("tr[data-action='reveal']")).to_have_count(14)
    # Everything is reachable without scrolling sideways, on a phone as on a desktop.
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{overflow}px wider than the {width}px window"
    bursts.locator("tr[data-actor='ann'] a").click()
    page.wait_for_url("**/admin/audit?actor=ann")
    expect(page.get_by_test_id("actor-filter")).to_contain_text("ann")
    expect(page.get_by_test_id("audit-rows").locator("tr[data-action='reveal']")).to_have_count(12)


def test_form_posts_without_a_csrf_token_are_refused(new_page: PageFactory, seed: Seed, db_url: str) -> None:
    page = new_page("ann")
    page.goto(f"/tasks/{seed.tasks['ann_first']}")
    # The claim posts and comes back to the task page: the forged form is made on that page, not on the
    # one being left (on a loaded machine the tokens were removed there, and the next navigation caught
    # was the claim's own).
    with page.expect_navigation():
        page.get_by_test_id("claim").click()
    playwright_sync.expect(page.get_by_test_id("outcome-no_answer")).to_be_visible()
    # A forged form: the same post, without the token (as another site could send it with the cookie).
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    with page.expect_navigation() as nav:
        page.get_by_test_id("outcome-no_answer").click()
    response = nav.value
    assert response is not None and response.status == 403
    # Refused, and told as a form to send again from its page (a stale page is what a person meets; a forger
    # gets the same 403 and changes nothing).
    playwright_sync.expect(page.locator("h1")).to_have_text("This form has expired")
    api = page.request.post(f"/tasks/{seed.tasks['free']}/claim", form={"csrf_token": "guessed"})
    assert api.status == 403
    with session_scope(db_url) as s:
        assert s.get(AgentTask, seed.tasks["ann_first"]).status == "claimed"  # type: ignore[union-attr]
        assert s.get(AgentTask, seed.tasks["free"]).assignee_id is None  # type: ignore[union-attr]


def test_overdue_tasks_are_highlighted_and_pages_follow_the_users_language(new_page: PageFactory, seed: Seed,
                                                                          db_url: str) -> None:
    with session_scope(db_url) as s:
        late = add_task(s, "t-late", seed.customers["C1"], now=seed.now, due_in=-timedelta(minutes=30),
                        assignee_id=seed.users["bob"])
    page = new_page("bob")  # zh-CN
    expect = playwright_sync.expect
    row = page.get_by_test_id("my-tasks").locator(f"tr[data-task-id='{late}']")
    expect(row).to_have_class("overdue")
    expect(row.locator(".countdown")).to_contain_text("已超时")
    expect(page.locator("h2").first).to_contain_text("我的任务")
    # Due-time order: the overdue one comes first.
    expect(page.get_by_test_id("my-tasks").locator("tr[data-task-id]").first).to_have_attribute(
        "data-task-id", str(late))
