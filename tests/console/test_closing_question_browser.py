"""The question before a closing outcome is a dialog of the task page, in real Chromium at desktop and phone
width: answering it leaves no page of its own in the history. Before, the question was the server's answer to
the outcome form, and after "Yes, record it" the back button landed on Chrome's "Confirm form resubmission"
page. Without script the server still asks it, as before."""

from __future__ import annotations

from typing import Any

import pytest

from store.db import session_scope
from store.models import AgentTask
from tests.console.conftest import DESK, PHONE, PageFactory, Seed

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


def _status(db_url: str, task: int) -> tuple[str, str | None]:
    with session_scope(db_url) as s:
        row = s.get(AgentTask, task)
        assert row is not None
        return row.status, row.outcome_code


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_the_closing_question_is_a_dialog_and_back_returns_to_the_task(new_page: PageFactory, seed: Seed,
                                                                       db_url: str, device: dict[str, Any]) -> None:
    task = seed.tasks["ann_first"]
    page = new_page("ann", device)
    page.goto(f"/tasks/{task}")
    page.get_by_test_id("claim").click()
    expect(page.get_by_role("status").first).to_have_text("Task claimed.")
    task_url = page.url
    page.fill("textarea[name=notes]", "Reached, all fine\nsecond line")
    dialog = page.get_by_test_id("confirm")
    expect(dialog).to_be_hidden()

    page.get_by_test_id("outcome-reached").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Reached")
    expect(dialog.locator(".notes")).to_have_text("Reached, all fine\nsecond line")
    assert page.url == task_url  # asked in the page: nothing was sent
    box = dialog.bounding_box()
    viewport = device["viewport"]
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    page.keyboard.press("Escape")  # as "No, go back"
    expect(dialog).to_be_hidden()
    page.get_by_test_id("outcome-reached").click()
    page.get_by_test_id("confirm-cancel").click()
    expect(dialog).to_be_hidden()
    assert _status(db_url, task) == ("claimed", None)

    page.get_by_test_id("outcome-reached").click()
    page.get_by_test_id("confirm-outcome").click()
    expect(page.get_by_role("status").first).to_have_text("Outcome recorded.")
    assert _status(db_url, task) == ("done", "reached")
    page.go_back()
    page.wait_for_load_state()
    assert page.url == task_url, page.url  # the task page itself, not a form to send again
    expect(page.get_by_test_id("reason")).to_be_visible()


def test_without_script_the_server_asks_the_question(new_page: PageFactory, seed: Seed, db_url: str) -> None:
    task = seed.tasks["ann_first"]
    page = new_page("ann", {**DESK, "java_script_enabled": False})
    page.goto(f"/tasks/{task}")
    page.get_by_test_id("claim").click()
    page.fill("textarea[name=notes]", "No script here")
    page.get_by_test_id("outcome-reached").click()
    question = page.locator("div.confirm[data-testid=confirm]")
    expect(question).to_be_visible()
    expect(question).to_contain_text("No script here")
    assert _status(db_url, task) == ("claimed", None)
    question.get_by_test_id("confirm-outcome").click()
    expect(page.get_by_role("status").first).to_have_text("Outcome recorded.")
    assert _status(db_url, task) == ("done", "reached")
