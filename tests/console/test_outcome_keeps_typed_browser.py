"""What an agent typed about a call is never lost to a refused outcome, in real Chromium against a real uvicorn
server at desktop and phone width, in Chinese. Before, every refusal of the outcome form was a redirect to the
task page with an empty form: a call-back time in the past, "No, go back" on the closing question, or a
colleague's tab closing the task first each threw away the notes (up to 4,000 characters) and the time."""

from __future__ import annotations

from typing import Any

import pytest

from store.db import session_scope
from store.models import AgentTask
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

NOTES = "客户说下周三下午方便，要求先发短信确认。\n第二行：保单号待核对"


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_a_refused_or_withdrawn_outcome_keeps_the_notes_and_the_time(new_page: PageFactory, seed: Seed, db_url: str,
                                                                     device: dict[str, Any]) -> None:
    set_locale(db_url, "ann", "zh-CN")
    task = seed.tasks["ann_first"]
    page = new_page("ann", device)
    page.goto(f"/tasks/{task}")
    page.get_by_test_id("claim").click()
    expect(page.get_by_role("status").first).to_have_text("已领取任务。")
    form = page.get_by_test_id("complete-form")
    notes, when = form.locator("textarea[name=notes]"), form.locator("input[name=callback_at]")

    # A call-back time in the past: refused, in words, with the notes and the time still in the form.
    notes.fill(NOTES)
    when.fill("2020-01-01T10:00")
    page.get_by_test_id("outcome-call_back").click()
    expect(page.locator(".flash.error")).to_have_text("回拨时间必须在将来（最多 90 天内）。")
    expect(notes).to_have_value(NOTES)
    expect(when).to_have_value("2020-01-01T10:00")

    # A closing outcome, then "No, go back": nothing recorded, the notes still there.
    page.get_by_test_id("outcome-reached").click()
    expect(page.get_by_test_id("confirm")).to_contain_text(NOTES.splitlines()[0])
    page.get_by_test_id("confirm-cancel").click()
    expect(notes).to_have_value(NOTES)
    with session_scope(db_url) as s:
        assert s.get(AgentTask, task).status == "claimed"  # type: ignore[union-attr]

    # A second tab of hers records the outcome first: the first tab's notes are shown to copy, not dropped.
    other = page.context.new_page()
    other.goto(f"/tasks/{task}")
    other.get_by_test_id("outcome-reached").click()
    other.get_by_test_id("confirm-outcome").click()
    expect(other.get_by_role("status").first).to_have_text("已记录结果。")
    page.get_by_test_id("outcome-no_answer").click()
    expect(page.locator(".flash.error")).to_have_text("该任务已关闭。")
    unsaved = page.get_by_test_id("unsaved-notes")
    expect(unsaved).to_contain_text("您的备注（未保存）")
    expect(unsaved.locator(".notes")).to_have_text(NOTES)
    assert_fits(page)
    with session_scope(db_url) as s:
        done = s.get(AgentTask, task)
        assert done is not None and (done.status, done.outcome_code, done.notes) == ("done", "reached", None)
