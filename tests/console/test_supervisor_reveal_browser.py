"""A supervisor looking at a call her agent is making (90a933d: only the person working a claimed task may
unmask its customer), in real Chromium at desktop and phone width, in Chinese: no reveal button, and why
in words, within the screen (the page had said nothing)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


WORDS = "只有已领取并正在处理此任务的人员才能查看客户的联系方式。如需亲自联系客户，请先接手此任务。"


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_a_supervisor_sees_no_reveal_on_a_call_her_agent_is_making(new_page: PageFactory, seed: Seed, db_url: str,
                                                                   device: dict[str, Any]) -> None:
    set_locale(db_url, "sue", "zh-CN")
    page = new_page("sue", device)
    assert page.goto(f"/tasks/{seed.tasks['bob']}").status == 200
    expect(page.get_by_test_id("reveal")).to_have_count(0)
    hint = page.get_by_test_id("reveal-hint")
    expect(hint).to_have_text(WORDS)
    box = hint.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= device["viewport"]["width"]
    assert_fits(page)
