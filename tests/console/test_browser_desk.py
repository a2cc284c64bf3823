"""The agent desk in real Chromium against a real uvicorn server, at desk and phone width.

Covers the issue's findings one by one: a complaint task page shows why it exists and its
script; the inbox shows a team's queues with filters; outcomes come after the claim and closing
ones are confirmed; at 390 px the inbox is cards and every action can be tapped; the Chinese
pages show words, not codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from console.events_bridge import emit
from store.db import session_scope
from store.models import AgentTask, Customer, Event
from tests.console.conftest import PASSWORD, Seed, add_task, add_user

pytestmark = pytest.mark.browser

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}
DESK = {"viewport": {"width": 1280, "height": 900}}
PageFactory = Callable[..., Any]
COMPLAINT = {"category": "claims", "severity": "high", "source": "hotline",
             "text": "理赔拖了两周没人管，请回电 13812345678"}


@pytest.fixture
def new_page(browser: Any, server: str) -> Iterator[PageFactory]:
    contexts = []

    def make(username: str, device: dict[str, Any] | None = None) -> Any:
        context = browser.new_context(base_url=server, **(device or DESK))
        contexts.append(context)
        page = context.new_page()
        page.goto("/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/inbox")
        return page

    yield make
    for context in contexts:
        context.close()


def _complaint_task(url: str, event_id: str = "cmp-1") -> int:
    emit("complaint.filed", "C1", COMPLAINT, event_id=event_id, db_url=url)
    with session_scope(url) as s:
        event = s.exec(select(Event).where(Event.external_id == event_id)).one()
        task_id = s.exec(select(AgentTask.id).where(AgentTask.occurrence == f"event-{event.id}")).one()
        assert task_id is not None
        return task_id


def _no_sideways_scroll(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{overflow}px wider than the window"


def test_complaint_task_page_shows_the_complaint_text_and_the_script(new_page: PageFactory, seed: Seed,
                                                                     db_url: str) -> None:
    task_id = _complaint_task(db_url)
    page = new_page("ann")
    page.goto(f"/tasks/{task_id}")
    reason = page.get_by_test_id("reason")
    expect(reason.get_by_test_id("reason-event")).to_contain_text("Complaint filed")
    expect(reason.get_by_test_id("reason-text")).to_have_text("理赔拖了两周没人管，请回电 138****5678")
    expect(reason.get_by_test_id("reason-category")).to_have_text("Claims")
    expect(reason.get_by_test_id("reason-severity")).to_have_text("High")
    script = page.get_by_test_id("script")
    expect(script).to_contain_text("投诉原文：理赔拖了两周没人管，请回电 138****5678")
    expect(script).to_contain_text("张**")
    expect(page.get_by_test_id("script-error")).to_have_count(0)
    assert "13812345678" not in page.content()


def test_an_agent_sees_her_teams_queue_filters_it_and_confirms_a_closing_outcome(
        new_page: PageFactory, seed: Seed, db_url: str) -> None:
    add_user(db_url, "carl", "complaints")
    add_user(db_url, "gina", "gold_callback")
    complaint = _complaint_task(db_url)
    with session_scope(db_url) as s:
        gold = add_task(s, "gold-1", seed.customers["C1"], now=seed.now, due_in=timedelta(days=3),
                        queue="gold_callback")
        late = add_task(s, "cmp-late", seed.customers["C3"], now=seed.now, due_in=-timedelta(hours=2),
                        queue="complaints", journey_id="complaint-response", script=None)
    page = new_page("carl")
    pool = page.get_by_test_id("claimable")
    expect(pool.locator(f"tr[data-task-id='{complaint}']")).to_be_visible()
    expect(pool.locator(f"tr[data-task-id='{gold}']")).to_have_count(0)  # gold callbacks are gina's team's
    page.get_by_test_id("filter-queue").select_option("complaints")
    page.get_by_test_id("filter-overdue").check()
    page.get_by_test_id("filter-apply").click()
    page.wait_for_url(re.compile(r".*queue=complaints.*overdue=1.*"))
    expect(pool.locator("tr[data-task-id]")).to_have_count(1)
    expect(pool.locator(f"tr[data-task-id='{late}']")).to_be_visible()
    page.get_by_test_id("filter-clear").click()
    page.get_by_test_id("filter-customer").fill("C1")
    page.get_by_test_id("filter-apply").click()
    expect(pool.locator("tr[data-task-id]")).to_have_count(1)

    page.get_by_test_id(f"open-{complaint}").click()
    page.wait_for_url(f"**/tasks/{complaint}")
    expect(page.locator("[name=outcome]")).to_have_count(0)  # nothing to record before the claim
    page.get_by_test_id("claim").click()
    outcomes = page.get_by_test_id("complete-form").locator("[name=outcome]")
    expect(outcomes).to_have_count(5)  # the complaints queue's: no renewal intent on a complaint
    expect(page.get_by_test_id("outcome-renewal_yes")).to_have_count(0)
    page.fill("textarea[name=notes]", "Refund agreed")
    page.get_by_test_id("outcome-resolved").click()
    expect(page.get_by_test_id("confirm")).to_contain_text("Resolved")
    page.get_by_test_id("confirm-cancel").click()  # changed her mind: nothing recorded
    with session_scope(db_url) as s:
        assert s.get(AgentTask, complaint).status == "claimed"  # type: ignore[union-attr]
    page.get_by_test_id("outcome-resolved").click()
    page.get_by_test_id("confirm-outcome").click()
    expect(page.get_by_role("status").first).to_have_text("Outcome recorded.")
    with session_scope(db_url) as s:
        done = s.get(AgentTask, complaint)
        assert done is not None and done.status == "done" and done.outcome_code == "resolved"


def test_on_a_phone_the_inbox_is_cards_and_open_claim_and_outcomes_are_tappable(new_page: PageFactory,
                                                                                seed: Seed, db_url: str) -> None:
    complaint = _complaint_task(db_url)
    page = new_page("bob", PHONE)  # zh-CN
    _no_sideways_scroll(page)
    row = page.get_by_test_id("claimable").locator(f"tr[data-task-id='{complaint}']")
    expect(row).to_be_visible()
    assert page.eval_on_selector(f"tr[data-task-id='{complaint}']", "e => getComputedStyle(e).display") == "block"
    # Every cell on a line of its own with its label; words, not one character per line.
    cell = row.locator("td.customer").bounding_box()
    assert cell is not None and cell["width"] > 250
    expect(row).to_contain_text("投诉处理")  # the queue in words
    open_link = page.get_by_test_id(f"open-{complaint}")
    box = open_link.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= 100
    open_link.tap()  # fails if anything covers the link
    page.wait_for_url(f"**/tasks/{complaint}")
    _no_sideways_scroll(page)
    expect(page.get_by_test_id("reason")).to_contain_text("客户投诉")
    page.get_by_test_id("claim").tap()
    expect(page.get_by_test_id("assignee")).to_have_text("Bob")
    for button in page.get_by_test_id("complete-form").locator("[name=outcome]").all():
        b = button.bounding_box()
        assert b is not None and b["height"] >= 44
    page.get_by_test_id("outcome-reached").tap()
    page.get_by_test_id("confirm-outcome").tap()
    expect(page.get_by_role("status").first).to_have_text("已记录结果。")
    with session_scope(db_url) as s:
        assert s.get(AgentTask, complaint).outcome_code == "reached"  # type: ignore[union-attr]


@pytest.mark.parametrize("width", [1280, 390])
def test_chinese_inbox_shows_words_for_queues_and_tiers(new_page: PageFactory, seed: Seed, db_url: str,
                                                        width: int) -> None:
    _complaint_task(db_url)
    with session_scope(db_url) as s:
        add_task(s, "fast-1", seed.customers["C3"], now=seed.now, due_in=timedelta(hours=2),
                 queue="claims_fast_track", journey_id="small-claim-acknowledgement", script=None)
        c1 = s.get(Customer, seed.customers["C1"])
        assert c1 is not None
    page = new_page("bob", {"viewport": {"width": width, "height": 900}})
    text = page.locator("main").inner_text()
    for words in ("投诉处理", "小额理赔快速通道", "黄金", "白银"):
        assert words in text, words
    for code in ("claims_fast_track", "complaints", "gold", "callbacks"):
        assert code not in text, code
    _no_sideways_scroll(page)


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["1280", "390"])
def test_supervisor_sees_the_backlog_and_assigns_from_the_pool_in_bulk(new_page: PageFactory, seed: Seed,
                                                                      db_url: str, device: dict[str, Any]) -> None:
    with session_scope(db_url) as s:
        pool = [add_task(s, f"gold-{i}", seed.customers["C1"], now=seed.now, due_in=timedelta(hours=6, minutes=i),
                         queue="gold_callback") for i in range(3)]
        spare = add_task(s, "gold-spare", seed.customers["C3"], now=seed.now, due_in=timedelta(hours=8),
                         queue="gold_callback")
        s.get(AgentTask, spare).warn_at = seed.now - timedelta(minutes=1)  # type: ignore[union-attr]
    page = new_page("sue", device)
    page.get_by_role("link", name="Team").first.click()
    page.wait_for_url("**/supervisor")
    _no_sideways_scroll(page)
    gold = page.get_by_test_id("backlog").locator("tr[data-queue='gold_callback']")
    expect(gold.locator("[data-k=pool]")).to_have_text("4")
    expect(gold.locator("[data-k=at_risk]")).to_have_text("1")
    expect(page.get_by_test_id("sla-chart").locator("svg")).to_be_visible()
    touch = device is PHONE
    link = page.get_by_test_id("pool-gold_callback")
    link.tap() if touch else link.click()
    page.wait_for_url(re.compile(r".*state=pool.*"))
    rows = page.get_by_test_id("team-tasks").locator("tr[data-task-id]")
    expect(rows).to_have_count(4)
    for task_id in pool:
        box = page.get_by_test_id(f"pick-{task_id}")
        box.tap() if touch else box.check()
        expect(box).to_be_checked()
    page.get_by_test_id("bulk-to").select_option(str(seed.users["bob"]))
    button = page.get_by_test_id("bulk-assign")
    button.tap() if touch else button.click()
    expect(page.get_by_role("status").first).to_have_text("3 task(s) assigned.")
    expect(rows).to_have_count(1)  # only the spare one is left in the pool
    with session_scope(db_url) as s:
        owners = {s.get(AgentTask, t).assignee_id for t in pool}  # type: ignore[union-attr]
    assert owners == {seed.users["bob"]}
    _no_sideways_scroll(page)


def test_an_sla_at_risk_is_shown_to_the_assignee_and_the_supervisor(new_page: PageFactory, seed: Seed,
                                                                    db_url: str) -> None:
    from console.sla import warn_at_risk

    with session_scope(db_url) as s:
        risky = s.get(AgentTask, seed.tasks["ann_first"])
        assert risky is not None
        risky.warn_at = seed.now - timedelta(minutes=1)  # 80% of its SLA time has gone
    assert warn_at_risk(db_url=db_url) == 1
    agent = new_page("ann")
    expect(agent.get_by_test_id("risk-warning")).to_contain_text("1 of your tasks will breach their SLA soon.")
    expect(agent.get_by_test_id(f"at-risk-{seed.tasks['ann_first']}")).to_be_visible()
    supervisor = new_page("sue", PHONE)
    supervisor.goto("/supervisor")
    expect(supervisor.get_by_test_id("kpi-at-risk")).to_have_text("1")
    expect(supervisor.get_by_test_id("team-load").locator(f"tr[data-agent-id='{seed.users['ann']}'] [data-k=at_risk]")
           ).to_have_text("1")
    _no_sideways_scroll(supervisor)


def test_the_admin_gives_an_agent_a_licence_and_the_licensed_queue_opens_to_her(new_page: PageFactory, seed: Seed,
                                                                               db_url: str) -> None:
    with session_scope(db_url) as s:
        booking = add_task(s, "hb-1", seed.customers["C1"], now=seed.now, due_in=timedelta(hours=4),
                           queue="health_booking", journey_id="claim-settled-health-consultation")
    agent = new_page("ann")
    expect(agent.get_by_test_id("claimable").locator(f"tr[data-task-id='{booking}']")).to_have_count(0)
    # The admin's start page is the users page, not the inbox: logged in here rather than by new_page.
    context = agent.context.browser.new_context(base_url=agent.url.split("/inbox")[0])
    try:
        page = context.new_page()
        page.goto("/login")
        page.fill("input[name=username]", "adam")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/admin/users")
        skills = page.get_by_test_id("skills-ann")
        skills.locator("summary").click()
        skills.locator("input[value='licence:health']").check()
        skills.get_by_test_id("save-skills-ann").click()
        expect(page.get_by_role("status").first).to_have_text("Skills of ann saved.")
        expect(page.get_by_test_id("skills-ann").locator("summary")).to_have_text("Licensed for health")
    finally:
        context.close()
    agent.reload()  # her skills are read with her session on each request
    expect(agent.get_by_test_id("claimable").locator(f"tr[data-task-id='{booking}']")).to_be_visible()
