"""Removing a recipient from the test-send seed list removes the one whose row was clicked, in real Chromium
against a real uvicorn server at desktop and phone width, in Chinese and English.

Before, each row's Remove button posted the row's place in the list. When the list changed after the page was
drawn (a colleague, or another tab, removed someone above), the place named another recipient: the click removed
the next person down, said "Recipient removed", and the one clicked stayed on the list to receive test sends."""

from __future__ import annotations

from typing import Any

import pytest

from console.seed_send import add_recipient, seed_list
from store.db import session_scope
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

STAFF = [("质检 王", "wang@insurer.example.com"), ("质检 李", "li@insurer.example.com"),
         ("质检 赵", "zhao@insurer.example.com")]
WORDS = {"zh-CN": {"removed": "已将收件人移出测试名单。", "gone": "没有这个收件人。"},
         "en": {"removed": "Recipient removed from the seed list.", "gone": "No such recipient."}}


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_remove_takes_off_the_recipient_clicked_after_the_list_changed(new_page: PageFactory, seed: Seed,
                                                                      db_url: str, device: dict[str, Any],
                                                                      locale: str) -> None:
    set_locale(db_url, "olga", locale)
    with session_scope(db_url) as s:
        for name, email in STAFF:
            add_recipient(s, "olga", name, email_text=email)
    words = WORDS[locale]
    page = new_page("olga", device, lands_on="**/ops/journeys")
    page.goto("/ops/test-send")
    rows = page.get_by_test_id("seed-list").locator("tbody tr")
    expect(rows).to_have_count(3)

    # Another tab removes the first recipient; this page still shows all three.
    other = page.context.new_page()
    other.goto("/ops/test-send")
    other.get_by_test_id("seed-list").locator("tbody tr", has_text=STAFF[0][0]).get_by_role("button").click()
    expect(other.get_by_role("status").first).to_have_text(words["removed"])

    # Remove 李 on the page drawn before: 李 goes, 赵 stays.
    rows.filter(has_text=STAFF[1][0]).get_by_role("button").click()
    expect(page.get_by_role("status").first).to_have_text(words["removed"])
    expect(page.get_by_test_id("seed-list").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("seed-list")).to_contain_text(STAFF[2][0])
    assert_fits(page)
    with session_scope(db_url) as s:
        assert [r.name for r in seed_list(s)] == [STAFF[2][0]]

    # The first tab's rows are stale too: removing 李 there again (gone already) removes nobody else.
    other.get_by_test_id("seed-list").locator("tbody tr", has_text=STAFF[1][0]).get_by_role("button").click()
    expect(other.locator(".flash.error")).to_have_text(words["gone"])
    with session_scope(db_url) as s:
        assert [r.name for r in seed_list(s)] == [STAFF[2][0]]
