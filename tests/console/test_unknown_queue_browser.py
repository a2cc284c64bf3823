"""The inbox's word for a queue that does not exist (a mistyped or stale link), in real Chromium at desktop and
phone width, in Chinese: said above the whole inbox, within the screen, with the inbox still there."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_an_unknown_queue_is_said_above_the_whole_inbox(new_page: PageFactory, seed: Seed, db_url: str,
                                                        device: dict[str, Any]) -> None:
    set_locale(db_url, "ann", "zh-CN")
    page = new_page("ann", device)
    page.goto("/inbox?queue=gold_calback")
    notice = page.get_by_test_id("unknown-queue")
    expect(notice).to_have_text("没有名为“gold_calback”的队列，下面是您的全部队列。")
    box = notice.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= device["viewport"]["width"]
    expect(page.get_by_test_id("my-tasks").locator("tr[data-task-id]")).to_have_count(2)
    assert_fits(page)
