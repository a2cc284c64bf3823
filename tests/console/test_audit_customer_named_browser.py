"""The audit log names the customer whose details were unmasked by the customer's id, the one every other page,
the inbox's filter and the API know them by, in real Chromium against a real uvicorn server at desktop and phone
width, in Chinese and English.

Before, /admin/audit showed an agent's reveal as "客户 1" / "Customer 1": the row number the store gives the customer,
shown nowhere else in the console, so the admin reading the log could not tell whose details were seen."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

CUSTOMER = {"zh-CN": "客户 C1", "en": "Customer C1"}


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_a_reveal_is_logged_against_the_customers_id(new_page: PageFactory, seed: Seed, db_url: str,
                                                     device: dict[str, Any], locale: str) -> None:
    set_locale(db_url, "adam", locale)
    assert str(seed.customers["C1"]) != "C1"  # the store's row number is not the customer's id
    ann = new_page("ann", device)
    ann.goto(f"/tasks/{seed.tasks['ann_first']}")
    ann.get_by_test_id("claim").click()
    ann.get_by_test_id("reveal").click()
    expect(ann.get_by_test_id("customer-phone")).to_have_text("+8613812345678")

    page = new_page("adam", device, lands_on="**/admin/users")
    page.goto("/admin/audit")
    row = page.get_by_test_id("audit-rows").locator("tr[data-action=reveal]")
    expect(row).to_have_count(1)
    target = row.locator("td").nth(3)
    expect(target).to_have_text(CUSTOMER[locale])
    assert_fits(page)
