"""What an agent wrote about a call reaches whoever calls next, masked as every other text an agent reads, in real
Chromium against a real uvicorn server at desktop and phone width, in Chinese and English.

Before, the notes of a call were stored on its task and shown on that task's page as typed: a phone number, an
e-mail address or the customer's full name written into them was shown unmasked to the supervisor and to anyone
opening the closed task, where the customer's own details are masked and nobody may unmask them. And the call back
the customer asked for (or the retry after no answer) showed the earlier call under "Recent outcomes" with an empty
text: the agent calling back never saw what was agreed, nor when the customer asked to be called."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import pytest
from sqlmodel import select

from console.i18n import DISPLAY_ZONE, Translator
from store.clock import utcnow, zone
from store.db import session_scope
from store.models import AgentTask
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

# C1 is 张三丰 (+8613812345678); the notes name the customer and a new number she gave.
NOTES = "张三丰本人接听，新号码 13912345678，邮箱 sanfeng.zhang@example.com；下周三下午三点再打，先核对保单 P1。"
SHOWN = "张**本人接听，新号码 139****5678，邮箱 s***@example.com；下周三下午三点再打，先核对保单 P1。"
RAW = ("13912345678", "sanfeng.zhang@example.com", "张三丰")
WORDS = {"zh-CN": {"claimed": "已领取任务。", "call_back": "约定时间回拨"},
         "en": {"claimed": "Task claimed.", "call_back": "Call back at a time"}}


def _in_two_days() -> tuple[str, datetime]:
    """15:30 the day after tomorrow on the console's clock: as typed in the form, and the moment it stands for."""
    local = datetime.combine((utcnow().astimezone(zone(DISPLAY_ZONE)) + timedelta(days=2)).date(), time(15, 30),
                             tzinfo=zone(DISPLAY_ZONE))
    return local.strftime("%Y-%m-%dT%H:%M"), local


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_the_call_back_shows_the_last_calls_notes_masked(new_page: PageFactory, seed: Seed, db_url: str,
                                                         device: dict[str, Any], locale: str) -> None:
    set_locale(db_url, "ann", locale)
    set_locale(db_url, "sue", locale)
    words, t = WORDS[locale], Translator(locale)
    task = seed.tasks["ann_first"]
    typed, moment = _in_two_days()
    page = new_page("ann", device)
    page.goto(f"/tasks/{task}")
    page.get_by_test_id("claim").click()
    expect(page.get_by_role("status").first).to_have_text(words["claimed"])
    form = page.get_by_test_id("complete-form")
    form.locator("textarea[name=notes]").fill(NOTES)
    form.locator("input[name=callback_at]").fill(typed)
    page.get_by_test_id("outcome-call_back").click()
    page.wait_for_url(lambda url: f"/tasks/{task}" not in url)
    with session_scope(db_url) as s:
        follow_up = s.exec(select(AgentTask).where(AgentTask.parent_task_id == task)).one()
        assert follow_up.notes is None and follow_up.status == "open"

    # The call back: the earlier call is among the customer's outcomes with its notes, masked, and the time asked.
    page.goto(f"/tasks/{follow_up.id}")
    earlier = page.get_by_test_id("outcomes").locator("tr", has_text=words["call_back"])
    expect(earlier).to_have_count(1)
    expect(earlier).to_contain_text(SHOWN)
    expect(earlier).to_contain_text(t.datetime(moment))
    assert_fits(page)
    body = page.locator("main").inner_text()
    assert not [raw for raw in RAW if raw in body], body

    # The supervisor reading the closed call: the notes masked, as the customer's details are.
    sue = new_page("sue", device)
    sue.goto(f"/tasks/{task}")
    expect(sue.get_by_test_id("task-notes")).to_have_text(SHOWN)
    assert_fits(sue)
    body = sue.locator("main").inner_text()
    assert not [raw for raw in RAW if raw in body], body
