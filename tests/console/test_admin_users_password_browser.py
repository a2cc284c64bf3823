"""The admin's users page offers what `journeys users` does: list (with who is locked out), passwd, disable.

It had no way to set a password and did not say who was locked out, so an agent who forgot a password or
locked the account with failed logins waited for someone with a terminal to run `journeys users passwd`.
The page now says "locked until" as `journeys users list` does, and sets a new password through the function
the CLI calls (console.auth.set_password): the account is unlocked and every session it had ends.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from store.clock import utcnow
from store.db import session_scope
from store.models import AppUser, AuditLog
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits, log_in_page, viewport_width
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
NEW_PASSWORD = "another-horse-2"
WORDS = {
    "zh-CN": {"locked": "锁定至", "open": "设置新密码", "field": "bob 的新密码", "save": "保存",
              "done": "已为 bob 设置新密码：账号已解锁，其所有会话已结束。", "refused": "密码未设置"},
    "en": {"locked": "Locked until", "open": "Set a new password", "field": "New password for bob", "save": "Save",
           "done": "Password of bob set: the account is unlocked and its sessions are ended.",
           "refused": "The password was not set"},
}


def _lock(db_url: str, name: str) -> None:
    with session_scope(db_url) as s:
        row = s.exec(select(AppUser).where(AppUser.username == name)).one()
        row.failed_logins = 5
        row.locked_until = utcnow() + timedelta(minutes=15)


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_an_admin_sees_a_lockout_and_ends_it_with_a_new_password(new_page: PageFactory, browser: Any, server: str,
                                                                 seed: Seed, db_url: str, locale: str,
                                                                 device: dict[str, Any]) -> None:
    words = WORDS[locale]
    set_locale(db_url, "adam", locale)
    bob = new_page("bob", device)  # a session bob holds before the lockout
    _lock(db_url, "bob")
    page = new_page("adam", device, lands_on="**/admin/users")
    expect(page.get_by_test_id("locked-bob")).to_contain_text(words["locked"])
    expect(page.get_by_test_id("locked-ann")).to_have_count(0)
    assert_fits(page)

    def set_bobs(password: str) -> None:
        details = page.get_by_test_id("password-bob")
        details.get_by_text(words["open"]).click()
        field = details.get_by_label(words["field"])
        field.fill(password)
        box = field.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport_width(page) + 1, box
        assert_fits(page)
        page.get_by_test_id("save-password-bob").click()
        page.wait_for_url("**/admin/users")

    set_bobs("aaaaaaaaaa")  # refused as the CLI refuses it: one character repeated
    expect(page.locator(".flash.error")).to_contain_text(words["refused"])
    expect(page.get_by_test_id("locked-bob")).to_have_count(1)

    set_bobs(NEW_PASSWORD)
    expect(page.locator(".flash.ok")).to_have_text(words["done"])
    expect(page.get_by_test_id("locked-bob")).to_have_count(0)
    assert_fits(page)
    with session_scope(db_url) as s:
        actions = [(a.actor, a.action, a.target_id) for a in s.exec(select(AuditLog))]
    assert ("adam", "user_password", str(seed.users["bob"])) in actions

    bob.reload()  # the session bob held with the old password has ended
    expect(bob).to_have_url(f"{server}/login?next=/inbox")
    fresh = browser.new_context(base_url=server, **device)
    try:
        log_in_page(fresh.new_page(), "bob", NEW_PASSWORD)  # unlocked, with the new password
    finally:
        fresh.close()
