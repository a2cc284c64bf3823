"""/admin/audit names a test send's template as people know it: the ``description:`` of its meta.yaml in
the admin's language (console.template_names), the code beside it only inside <code>. Before, the row
read "template birthday_greeting". In Chromium at 1280 and 390 px."""

from __future__ import annotations

from typing import Any

import pytest

from store.db import session_scope
from store.models import AuditLog
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale

NAMES = {"en": "Template: Birthday greeting", "zh-CN": "模板: 生日关怀"}


@pytest.mark.parametrize(("device", "locale"), [(DESK, "zh-CN"), (PHONE, "en")], ids=["desktop-zh", "phone-en"])
def test_a_test_send_shows_the_templates_name(new_page: PageFactory, seed: Seed, db_url: str,
                                              device: dict[str, Any], locale: str) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    set_locale(db_url, "adam", locale)
    with session_scope(db_url) as s:
        s.add(AuditLog(actor="olga", action="test_send", target_type="template", target_id="birthday_greeting",
                       detail={"channel": "sms", "locale": "zh-CN", "sent": 1}, at=seed.now))
    page = new_page("adam", device, lands_on="**/admin/users")
    page.goto("/admin/audit?kind=all")
    row = page.get_by_test_id("audit-rows").locator("tr[data-action='test_send']")
    target = row.locator("td").nth(3)
    expect(target).to_contain_text(NAMES[locale])
    expect(target.locator("code")).to_have_text("birthday_greeting")
    # The code appears once, inside <code>: not as the cell's own text.
    assert target.evaluate("c => c.textContent.split('birthday_greeting').length - 1") == 1
    assert_fits(page)
