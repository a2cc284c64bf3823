"""The supervisor's desk stays within a phone's width when her agents have long Chinese names.

A select is as wide as its longest option: with agents named as a branch's staff list names them
(上海分公司客户服务中心高级坐席专员欧阳慕容…), the agent filter, the bulk assignment and every task's
reassign list pushed the page to 559 px on a 390 px phone, so the whole desk scrolled sideways; a long
customer name, masked as 欧 and a run of stars, did the same to its task's card. Checked in
real Chromium at desktop and phone width, against the viewport's own width (a phone's window grows with an
overflowing page, so comparing with window.innerWidth passes a page that overflows).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from store.db import session_scope
from store.models import AppUser, Customer
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, add_user
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

LONG_NAME = "上海分公司客户服务中心高级坐席专员欧阳慕容{}号"
# Masked on the desk as its first character and a star for each of the others: one unbreakable run of stars.
LONG_CUSTOMER = "欧阳慕容司马诸葛上官东方皇甫尉迟公孙长孙宇文轩辕令狐钟离夏侯端木百里呼延"


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_the_desk_fits_the_screen_with_long_chinese_agent_names(new_page: PageFactory, seed: Seed, db_url: str,
                                                                device: dict[str, Any]) -> None:
    for i in range(12):
        add_user(db_url, f"agent{i}", "a", locale="zh-CN")
    with session_scope(db_url) as s:
        for u in s.exec(select(AppUser).where(AppUser.team == "a")):
            u.display_name = LONG_NAME.format(u.username)
        customer = s.get(Customer, seed.customers["C3"])
        assert customer is not None
        customer.name = LONG_CUSTOMER
    set_locale(db_url, "sue", "zh-CN")
    page = new_page("sue", device)
    assert page.goto("/supervisor").status == 200
    width = device["viewport"]["width"]
    for test_id in ("work-agent", "bulk-to", f"reassign-select-{seed.tasks['free']}"):
        chooser = page.get_by_test_id(test_id)
        expect(chooser).to_be_visible()
        box = chooser.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (test_id, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # The names are still there to choose from, whole.
    expect(page.get_by_test_id("bulk-to").locator("option", has_text=LONG_NAME.format("agent7"))).to_have_count(1)
