"""A test send goes out once however the page showing its results is reloaded or gone back to, in real Chromium
against a real uvicorn server (the real SMS adapter sending to the Twilio stand-in) at desktop and phone width, in
Chinese and English.

Before, the send's results were the answer to its POST: reloading that page, or coming back to it with the back
button, posted the form again (the browser's "resubmit?" prompt, one click away) and every seed recipient got the
test message a second time."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from console.seed_send import add_recipient
from standins.smtp_server import SmtpStandin
from standins.twilio_api import TwilioStandin
from store.db import session_scope
from store.models import AuditLog
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale
from tests.console.test_test_send import STAFF_PHONE, providers

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
__all__ = ["providers"]  # the fixture: the Twilio and SMTP stand-ins, configured

SENT = {"zh-CN": "已发送", "en": "Sent"}


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_a_test_send_is_not_sent_again_by_reload_or_back(new_page: PageFactory, seed: Seed, db_url: str,
                                                         providers: tuple[TwilioStandin, SmtpStandin],
                                                         device: dict[str, Any], locale: str) -> None:
    twilio, _ = providers
    set_locale(db_url, "olga", locale)
    with session_scope(db_url) as s:
        add_recipient(s, "olga", "质检 王", phone_text="13900001111")
    page = new_page("olga", device, lands_on="**/ops/journeys")
    page.goto("/ops/test-send")
    form = page.get_by_test_id("send-form")
    form.get_by_test_id("template").select_option("renewal_reminder")
    form.get_by_test_id("channel").select_option("sms")
    form.get_by_test_id("send").click()
    results = page.get_by_test_id("results")
    expect(results.locator("tr[data-ok='1']")).to_have_count(1)
    expect(results).to_contain_text("质检 王")
    expect(results).to_contain_text(SENT[locale])
    # The form still shows what was sent, to send it again on purpose.
    expect(form.get_by_test_id("template")).to_have_value("renewal_reminder")
    expect(form.get_by_test_id("channel")).to_have_value("sms")
    assert_fits(page)
    assert [e.recipient for e in twilio.log.entries] == [STAFF_PHONE]

    page.reload()
    expect(page.get_by_test_id("results").locator("tr[data-ok='1']")).to_have_count(1)
    assert [e.recipient for e in twilio.log.entries] == [STAFF_PHONE]
    page.goto("/ops/journeys")
    page.go_back()
    expect(page.get_by_test_id("results").locator("tr[data-ok='1']")).to_have_count(1)
    assert [e.recipient for e in twilio.log.entries] == [STAFF_PHONE]
    with session_scope(db_url) as s:
        sends = s.exec(select(AuditLog.actor).where(AuditLog.action == "test_send").order_by(col(AuditLog.id))).all()
    assert sends == ["olga"]
