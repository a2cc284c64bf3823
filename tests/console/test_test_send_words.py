"""Test send's refusals in the reader's language: before, a Chinese page read "无法添加收件人：phone cannot
be read as a number (not a number) ()" and "sms is not configured: sms: set TWILIO_ACCOUNT_SID, TWILIO_FROM".
Every refusal the seed list and the send give is worded from a catalogue msgid; only setting names
(environment variables) and the template's own file:line error stay as written."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from store.db import session_scope
from store.models import AppUser
from tests.console.conftest import Seed, login

ENGLISH = re.compile(r"\b(?![A-Z][A-Z0-9_]{2,}\b)[A-Za-z]{2,}\b")  # a word, not an environment variable's name


def chinese_ops(client: TestClient, db_url: str) -> str:
    with session_scope(db_url) as s:
        olga = s.exec(select(AppUser).where(AppUser.username == "olga")).one()
        olga.locale = "zh-CN"
        s.add(olga)
    return login(client, "olga")


def error_on(page: str) -> str:
    return page.split('class="flash error"', 1)[1].split(">", 1)[1].split("</p>", 1)[0]


@pytest.mark.parametrize(("form", "expected"), [
    ({"name": "QA", "phone": "not a number"}, "电话无法识别"),
    ({"name": "QA", "email": "nobody"}, "邮件无法识别"),
    ({"name": "QA"}, "请填写电话、邮箱或微信 openid 之一"),
    ({"name": "   ", "phone": "13900001111"}, "请填写姓名"),
])
def test_a_refused_recipient_is_explained_in_chinese(client: TestClient, db_url: str, seed: Seed,
                                                     form: dict[str, str], expected: str) -> None:
    token = chinese_ops(client, db_url)
    shown = error_on(client.post("/ops/test-send/recipients", data={"csrf_token": token, **form}).text)
    assert shown.startswith("无法添加收件人：") and expected in shown, shown
    assert not ENGLISH.search(shown.replace("openid", "")), shown


def test_an_unconfigured_channel_is_explained_in_chinese(client: TestClient, db_url: str, seed: Seed,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM"):
        monkeypatch.delenv(name, raising=False)
    token = chinese_ops(client, db_url)
    client.post("/ops/test-send/recipients", data={"csrf_token": token, "name": "QA", "phone": "13900001111"})
    page = client.post("/ops/test-send", data={"csrf_token": token, "template": "birthday_greeting",
                                               "channel": "sms", "locale": "zh-CN"})
    shown = page.text.split('data-testid="send-error">', 1)[1].split("</p>", 1)[0]
    assert shown.startswith("本服务器未配置短信") and "TWILIO_ACCOUNT_SID" in shown, shown
    assert not ENGLISH.search(shown), shown
    none = client.post("/ops/test-send", data={"csrf_token": token, "template": "birthday_greeting",
                                               "channel": "wechat", "locale": "zh-CN"})
    assert "种子名单中没有人有微信地址" in none.text


def test_a_channel_the_template_has_no_message_for_is_explained_in_chinese(client: TestClient, db_url: str,
                                                                         seed: Seed) -> None:
    """Any template can be chosen with any channel; one without that channel's file said, in English, "template
    'silver_weekly_push' (email, en): no email version (email.en.j2 or email.zh-CN.j2)"."""
    token = chinese_ops(client, db_url)
    client.post("/ops/test-send/recipients", data={"csrf_token": token, "name": "QA", "email": "qa@example.com"})
    page = client.post("/ops/test-send", data={"csrf_token": token, "template": "silver_weekly_push",
                                               "channel": "email", "locale": "en"})
    assert page.status_code == 422
    shown = page.text.split('data-testid="send-error">', 1)[1].split("</p>", 1)[0]
    assert shown == "此模板没有邮件消息，请选择其他渠道。", shown
