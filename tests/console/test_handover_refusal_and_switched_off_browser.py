"""Two pages never opened in a browser, in real Chromium, in Chinese and English, at 1280 and 390 px.

A supervisor hands a task to an agent who moved to another team after her page was drawn (TaskInvalid
``other_team``, 422 in the API): one task from the task page, several from the team page. The bulk form
said "Choose an active agent." of an agent who is active, now the reason the task page gives.

A touch cancelled because its journey was switched off, with the reason dispatch stores for it
(``journey <id> switched off``, engine.sending.sendable): in words on the task page's customer touches and
on the journey's ops page, the journey by its name, no code.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from store.db import session_scope
from store.models import AgentTask, Touch
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits, update_user
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

DEVICES = pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
LOCALES = pytest.mark.parametrize("locale", ["zh-CN", "en"])
OTHER_TEAM = {"zh-CN": "请选择本团队的坐席。", "en": "Choose an agent of your team."}
SWITCHED_OFF = {"zh-CN": "旅程「生日关怀」在此触达到期前已停用",
                "en": "Journey “Birthday care” was switched off before this touch was due"}


def _within_screen(page: Any, locator: Any, width: int) -> None:
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    assert_fits(page)


def _assignee(db_url: str, task_id: int) -> int | None:
    with session_scope(db_url) as s:
        task = s.get(AgentTask, task_id)
        assert task is not None
        return task.assignee_id


@LOCALES
@DEVICES
def test_handing_a_task_to_an_agent_now_in_another_team_says_why(new_page: PageFactory, seed: Seed, db_url: str,
                                                                  device: dict[str, Any], locale: str) -> None:
    set_locale(db_url, "sue", locale)
    page = new_page("sue", device)
    assert page.goto(f"/tasks/{seed.tasks['ann_first']}").status == 200
    page.get_by_test_id("reassign-select").select_option(str(seed.users["bob"]))
    update_user(db_url, "bob", team="b")  # after the page was drawn
    page.get_by_test_id("reassign").click()
    page.wait_for_url(f"**/tasks/{seed.tasks['ann_first']}")
    flash = page.locator(".flash.error")
    expect(flash).to_have_text(OTHER_TEAM[locale])
    _within_screen(page, flash, device["viewport"]["width"])
    assert _assignee(db_url, seed.tasks["ann_first"]) == seed.users["ann"]


@LOCALES
@DEVICES
def test_assigning_several_tasks_to_an_agent_now_in_another_team_says_why(
        new_page: PageFactory, seed: Seed, db_url: str, device: dict[str, Any], locale: str) -> None:
    set_locale(db_url, "sue", locale)
    page = new_page("sue", device)
    assert page.goto("/supervisor").status == 200
    page.get_by_test_id("pick-all").check()
    page.get_by_test_id("bulk-to").select_option(str(seed.users["bob"]))
    update_user(db_url, "bob", team="b")
    page.get_by_test_id("bulk-assign").click()
    page.wait_for_url("**/supervisor**")
    flash = page.locator(".flash.error")
    expect(flash).to_have_text(OTHER_TEAM[locale])
    _within_screen(page, flash, device["viewport"]["width"])
    assert _assignee(db_url, seed.tasks["ann_first"]) == seed.users["ann"]


def _switched_off_touch(db_url: str, seed: Seed) -> None:
    at = seed.now - timedelta(hours=2)
    with session_scope(db_url) as s:
        s.add(Touch(key="off:1", customer_id=seed.customers["C1"], journey_id="birthday-care", journey_version="v1",
                    step_id="greeting", occurrence="off1", category="service", channel="sms",
                    template="birthday_greeting", planned_for=at, due_at=at, status="cancelled", created_at=at,
                    error_reason="journey birthday-care switched off"))


@LOCALES
@DEVICES
def test_a_touch_of_a_journey_switched_off_says_so_in_words(new_page: PageFactory, seed: Seed, db_url: str,
                                                           device: dict[str, Any], locale: str) -> None:
    _switched_off_touch(db_url, seed)
    width = device["viewport"]["width"]
    set_locale(db_url, "ann", locale)
    page = new_page("ann", device)
    assert page.goto(f"/tasks/{seed.tasks['ann_first']}").status == 200
    why = page.locator("[data-k=why]", has_text=SWITCHED_OFF[locale])
    expect(why).to_have_count(1)
    expect(why).to_have_text(SWITCHED_OFF[locale])
    _within_screen(page, why, width)

    set_locale(db_url, "olga", locale)
    ops = new_page("olga", device, lands_on="**/ops/**")
    # The period's days are the programme's (China time): the touch's own day there, whatever the hour in UTC
    # (at 18:00 UTC and later, two hours back is already tomorrow in Shanghai).
    local = (seed.now - timedelta(hours=2)).astimezone(ZoneInfo("Asia/Shanghai")).date()
    day = local.isoformat()
    start = (local - timedelta(days=2)).isoformat()
    assert ops.goto(f"/ops/journeys/birthday-care?start={start}&end={day}").status == 200
    dropped = ops.get_by_test_id("step-counts").locator("tr[data-step='greeting'] [data-k=dropped]")
    expect(dropped).to_have_text(f"{SWITCHED_OFF[locale]}: 1")
    assert_fits(ops)
