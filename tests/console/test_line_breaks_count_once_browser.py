"""A line break typed in a box counts as one character, as the box itself counts it, in real Chromium against a
real uvicorn server at desktop and phone width, in Chinese and English.

A browser sends every line break of a form as CR LF, two characters, while the box's ``maxlength`` counted one.
Before, a compliance reviewer's comment of 491 characters over 12 lines (the box allows 500) was refused as "The
comment is too long." and the page came back with the box empty; an agent's notes of 4,000 characters with line
breaks in them (the box allows 4,000) were refused as too long and the call's notes were gone. And the review page
showed a comment's lines run together into one."""

from __future__ import annotations

from typing import Any

import pytest

from engine.language.journey_review import MAX_COMMENT
from store.db import session_scope
from store.models import AgentTask, JourneyVersion
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale
from tests.console.test_review_browser import pending

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
__all__ = ["pending"]  # the fixture: a change of the silver weekly push submitted by adam

LINE = "优先级由40调到45，与白银挽留加强对齐；已核对本周推送量不超频次上限。"
WORDS = {"zh-CN": {"approved": "已批准", "recorded": "已记录结果。", "claimed": "已领取任务。"},
         "en": {"approved": "Approved", "recorded": "Outcome recorded.", "claimed": "Task claimed."}}


def lines_up_to(limit: int, width: int) -> str:
    """Lines of ``width`` characters and the line breaks between them, ``limit`` characters in all."""
    text = "\n".join((LINE * (width // len(LINE) + 1))[:width] for _ in range(limit // width + 1))
    return text[:limit].rstrip("\n")


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_a_comment_as_long_as_its_box_allows_is_taken(new_page: PageFactory, pending: int, db_url: str,
                                                      device: dict[str, Any], locale: str) -> None:
    set_locale(db_url, "carol", locale)
    comment = lines_up_to(MAX_COMMENT - 1, 40)
    assert comment.count("\n") >= 10 and len(comment) < MAX_COMMENT
    page = new_page("carol", device, lands_on="**/ops/review")
    page.goto(f"/ops/review/{pending}")
    box = page.get_by_test_id("comment")
    box.fill(comment)
    expect(box).to_have_value(comment)  # the box took all of it: within its maxlength
    page.get_by_test_id("approve").click()
    expect(page.locator(".flash.ok")).to_contain_text(WORDS[locale]["approved"])
    # The decision on the page keeps the comment's lines (they ran together into one).
    assert comment.splitlines()[1] + "\n" + comment.splitlines()[2] in page.get_by_test_id("decision").inner_text()
    assert_fits(page)
    with session_scope(db_url) as s:
        row = s.get(JourneyVersion, pending)
        assert row is not None and (row.review_state, row.review_comment) == ("approved", comment)


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_notes_as_long_as_their_box_allows_are_recorded(new_page: PageFactory, seed: Seed, db_url: str,
                                                        device: dict[str, Any], locale: str) -> None:
    set_locale(db_url, "ann", locale)
    notes = lines_up_to(4000, 60)
    assert notes.count("\n") >= 60 and len(notes) <= 4000
    task = seed.tasks["ann_first"]
    page = new_page("ann", device)
    page.goto(f"/tasks/{task}")
    page.get_by_test_id("claim").click()
    expect(page.get_by_role("status").first).to_have_text(WORDS[locale]["claimed"])
    box = page.get_by_test_id("complete-form").locator("textarea[name=notes]")
    box.fill(notes)
    expect(box).to_have_value(notes)
    page.get_by_test_id("outcome-no_answer").click()
    expect(page.get_by_role("status").first).to_have_text(WORDS[locale]["recorded"])
    assert_fits(page)
    with session_scope(db_url) as s:
        done = s.get(AgentTask, task)
        assert done is not None and (done.status, done.outcome_code, done.notes) == ("done", "no_answer", notes)
