"""Test send: a template goes to the console's seed list through the real adapters (Twilio and SMTP
stand-ins), marked as a test, audited with masked recipients, and never counted in the figures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select
from starlette.testclient import TestClient

from console.seed_send import SEED_LIST_KEY, TEST_MARK, seed_list
from engine.loop.reports import build_report
from standins.smtp_server import SmtpStandin
from standins.twilio_api import TwilioStandin
from store.db import session_scope
from store.models import AppUser, AuditLog, Outcome, Touch
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits, login
from tests.console.ops_seed import seed_activity

STAFF_PHONE = "+8613900001111"


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TwilioStandin, SmtpStandin]]:
    twilio = TwilioStandin(callbacks=False)
    with twilio, SmtpStandin() as smtp:
        for name, value in {
            "TWILIO_ACCOUNT_SID": twilio.account_sid, "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "TWILIO_FROM": "+15005550006", "TWILIO_API_BASE": twilio.base_url,
            "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false",
            "EMAIL_FROM": "service@insurer.example.com",
        }.items():
            monkeypatch.setenv(name, value)
        yield twilio, smtp


def figures(db_url: str, seed: Seed) -> tuple[dict[str, Any], int, int]:
    report = build_report(seed.now - timedelta(days=30), seed.now + timedelta(days=1), "tier", now=seed.now,
                          url=db_url)
    with session_scope(db_url) as s:
        touches = s.exec(select(func.count()).select_from(Touch)).one()
        outcomes = s.exec(select(func.count()).select_from(Outcome)).one()
    return report, touches, outcomes


def test_test_send_reaches_the_seed_list_marked_and_is_never_counted(
    client: TestClient, seed: Seed, db_url: str, providers: tuple[TwilioStandin, SmtpStandin]
) -> None:
    twilio, smtp = providers
    seed_activity(db_url, list(seed.customers.values()), seed.now)
    before = figures(db_url, seed)
    assert before[1] > 0  # real touches are counted, so a test send that became one would show

    token = login(client, "olga")
    add = {"csrf_token": token, "name": "QA 张", "phone": "13900001111", "email": "qa@insurer.example.com"}
    assert client.post("/ops/test-send/recipients", data=add, follow_redirects=False).status_code == 303
    client.post("/ops/test-send/recipients",
                data={"csrf_token": token, "name": "Ops", "email": "ops@insurer.example.com"})
    bad = client.post("/ops/test-send/recipients", data={"csrf_token": token, "name": "Typo", "phone": "12345"})
    assert "could not be added" in bad.text and "12345" not in bad.text  # refused, number masked
    with session_scope(db_url) as s:
        assert [(r.name, r.phone) for r in seed_list(s)] == [("QA 张", STAFF_PHONE), ("Ops", None)]

    sms = client.post("/ops/test-send", data={"csrf_token": token, "template": "renewal_reminder",
                                              "channel": "sms", "locale": "zh-CN"})
    assert sms.status_code == 200 and 'data-ok="1"' in sms.text and 'data-ok="0"' not in sms.text
    [accepted] = twilio.log.entries
    assert accepted.recipient == STAFF_PHONE and accepted.detail["body"].startswith(TEST_MARK)

    mail = client.post("/ops/test-send", data={"csrf_token": token, "template": "renewal_reminder",
                                               "channel": "email", "locale": "en"})
    assert mail.text.count('data-ok="1"') == 2
    received = [message_from_bytes(m.raw, policy=policy.default) for m in smtp.messages]
    assert sorted(str(m["To"]) for m in received) == ["ops@insurer.example.com", "qa@insurer.example.com"]
    assert all(str(m["Subject"]).startswith(TEST_MARK) for m in received)

    assert figures(db_url, seed) == before  # no touch, no outcome, the same report
    with session_scope(db_url) as s:
        audits = s.exec(select(AuditLog).where(AuditLog.action == "test_send").order_by(col(AuditLog.id))).all()
        assert [(a.actor, a.detail["channel"], a.detail["sent"]) for a in audits] == [
            ("olga", "sms", 1), ("olga", "email", 2)]
        assert STAFF_PHONE not in str([a.detail for a in audits]) and "qa@insurer" not in str(
            [a.detail for a in audits])

    # Nobody on the list has WeChat: the page says so and sends nothing.
    none = client.post("/ops/test-send", data={"csrf_token": token, "template": "renewal_reminder",
                                               "channel": "wechat", "locale": "zh-CN"})
    assert none.status_code == 422 and "no seed recipient" in none.text


def test_removing_a_recipient(client: TestClient, db_url: str) -> None:
    token = login(client, "olga")
    client.post("/ops/test-send/recipients", data={"csrf_token": token, "name": "A", "email": "a@example.com"})
    client.post("/ops/test-send/recipients", data={"csrf_token": token, "name": "B", "email": "b@example.com"})
    [first] = re.findall(r'name="key" value="([0-9a-f]+)"', client.get("/ops/test-send").text)[:1]
    client.post("/ops/test-send/recipients/0/remove", data={"csrf_token": token, "key": first})
    with session_scope(db_url) as s:
        assert [r.name for r in seed_list(s)] == ["B"]
        assert s.exec(select(func.count()).select_from(AuditLog).where(
            col(AuditLog.target_id) == SEED_LIST_KEY)).one() == 3


@pytest.mark.browser
@pytest.mark.parametrize(("device", "locale"), [(DESK, "en"), (PHONE, "zh-CN")], ids=["desktop-en", "phone-zh"])
def test_test_send_page_in_chromium(new_page: PageFactory, db_url: str, device: dict[str, Any], locale: str,
                                    providers: tuple[TwilioStandin, SmtpStandin]) -> None:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    twilio, _ = providers
    with session_scope(db_url) as s:
        olga = s.exec(select(AppUser).where(AppUser.username == "olga")).one()
        olga.locale = locale
        s.add(olga)
    page = new_page("olga", device, lands_on="**/ops/journeys")
    page.get_by_test_id("test-send-link").click()
    form = page.get_by_test_id("add-recipient")
    form.locator("input[name=name]").fill("QA")
    form.locator("input[name=phone]").fill("13900001111")
    form.get_by_test_id("add").click()
    playwright_sync.expect(page.get_by_test_id("seed-list")).to_contain_text("139****1111")
    send = page.get_by_test_id("send-form")
    send.get_by_test_id("template").select_option("renewal_reminder")
    send.get_by_test_id("channel").select_option("sms")
    send.get_by_test_id("send").click()
    playwright_sync.expect(page.get_by_test_id("results").locator("tr[data-ok='1']")).to_have_count(1)
    playwright_sync.expect(page.locator("h1")).to_have_text("Test send" if locale == "en" else "测试发送")
    assert_fits(page)
    assert [e.recipient for e in twilio.log.entries] == [STAFF_PHONE]
