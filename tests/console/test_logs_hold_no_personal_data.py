"""No line the product writes during a whole flow holds a customer's phone, e-mail address, ID number,
openid or push registration id (SPEC §9): the import through the command line (a bad row's reason
included), an event through the API, the plan, a dispatch whose push and WeChat message are refused by
the providers (so the adapters log why, and the touch falls back to SMS), a reply and a receipt through
the webhooks, and console requests naming her. Every record of every logger at every level is read, as
formatted with the masking the product installs, with what the command line printed."""

from __future__ import annotations

import base64
import csv
import io
import logging
import os
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator
from typer.testing import CliRunner

from channels.push_jpush import JPushAdapter
from channels.sms_twilio import TwilioSmsAdapter
from channels.wechat import WeChatTemplateAdapter
from engine.cli import build_app
from engine.loop.wechat_hooks import wechat_signature
from engine.planning.planner import plan
from engine.sending.dispatch import Dispatcher
from engine.sending.render_batch import StoreRenderer
from standins.jpush_api import JPushStandin
from standins.twilio_api import TwilioStandin
from standins.wechat_api import WeChatStandin
from store.clock import utcnow
from store.db import get_engine
from store.masking import install_masking_everywhere
from tests.console.conftest import API_KEY
from tests.dispatch_support import daytime_zone, dispatch_until_idle
from tests.plan_support import Book
from tests.store.test_privacy import resident_id

PHONE, NATIONAL = "+8613812345678", "13812345678"
EMAIL = "wang.wei@example.com"
ID_NUMBER = next(i for i in (resident_id(n) for n in range(200)) if i.endswith("X"))
OPENID = "o6_bmjrptiirnnr7zcadq2a9jrvg"
PUSH_ID = "1a0018970af2a5b1c4d"
TOKEN = "standin-auth-token"
WECHAT_TOKEN = "standin-callback-token"
JOURNEY = """\
id: complaint-ack
name: Complaint acknowledged
category: service
entry: {event: {type: complaint.filed}}
steps:
  - id: ack
    send: {channels: [push, wechat, sms], template: msg}
"""


@pytest.fixture
def every_log_line() -> Iterator[io.StringIO]:
    """Every record of every logger, masked as the command line, the console and the flows mask them."""
    previous = logging.getLogRecordFactory()
    install_masking_everywhere()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.setLogRecordFactory(previous)


def import_file(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "name", "phone", "email", "wechat_openid", "push_registration_id",
                         "id_number", "timezone", "consent_sms", "consent_wechat", "consent_push"])
        writer.writerow(["WW-1", "王伟", PHONE, EMAIL, OPENID, PUSH_ID, ID_NUMBER, daytime_zone(), "yes", "yes", "yes"])
        # Bad rows, whose reasons are printed: her values in the wrong columns.
        writer.writerow(["WW-2", "王伟", EMAIL, NATIONAL, OPENID, NATIONAL, ID_NUMBER[:-1] + "0", "", "", "", ""])
        writer.writerow(["WW-3", "王伟", "", "", "", f"{PUSH_ID} {OPENID}", "", "", "", "", ""])
    return path


def signed(client: TestClient, path: str, form: dict[str, str]) -> int:
    url = f"http://testserver{path}"
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    return client.post(path, content=urllib.parse.urlencode(form), headers={
        "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}).status_code


def wechat_push(client: TestClient, sender: str, text: str) -> int:
    """A text from ``sender`` pushed to our server as WeChat signs it in plain mode (the openid in the query)."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(4)
    signature = wechat_signature(WECHAT_TOKEN, timestamp, nonce)
    query = urllib.parse.urlencode({"signature": signature, "timestamp": timestamp, "nonce": nonce, "openid": sender})
    body = (f"<xml><ToUserName><![CDATA[gh_standin00001]]></ToUserName><FromUserName><![CDATA[{sender}]]>"
            f"</FromUserName><CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{secrets.randbelow(10**15)}</MsgId></xml>")
    return client.post(f"/hooks/wechat?{query}", content=body.encode(),
                       headers={"Content-Type": "text/xml"}).status_code


def test_no_log_line_of_a_whole_flow_holds_her_contact_details(
        client: TestClient, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        every_log_line: io.StringIO) -> None:
    monkeypatch.setenv("JOURNEYS_DATA_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("WECHAT_TOKEN", WECHAT_TOKEN)
    book = Book(tmp_path / "book", db_url, monkeypatch)
    (book.templates / "msg" / "push.zh-CN.j2").write_text("理赔进度\n您好", encoding="utf-8")
    (book.templates / "msg" / "push.en.j2").write_text("Claim\nHello", encoding="utf-8")
    book.journey("complaint-ack", JOURNEY)
    printed = CliRunner().invoke(build_app(), ["import", "customers", str(import_file(tmp_path))])
    assert printed.exit_code == 1 and "WW-1" not in printed.stderr and printed.stderr.count("customers.csv:") == 2

    key = {"X-API-Key": API_KEY}
    sent = client.post("/api/events", headers=key, json={
        "type": "complaint.filed", "customer_id": "WW-1", "event_id": f"crm-{NATIONAL}",
        "data": {"category": "billing", "text": f"call {NATIONAL}, mail {EMAIL}, id {ID_NUMBER}"}})
    assert sent.status_code in (200, 201, 202), sent.text
    looked = client.get("/api/customers/WW-1", headers=key)
    assert looked.status_code == 200 and NATIONAL not in looked.text
    refused = client.put("/api/customers/WW-1", headers=key, json={"phone": f"{NATIONAL}0", "email": EMAIL[:-4]})
    assert refused.status_code == 422
    plan(utcnow(), utcnow() - timedelta(hours=1), url=db_url)

    with JPushStandin() as jpush, WeChatStandin(callbacks=False) as wechat, TwilioStandin(callbacks=False) as twilio:
        assert isinstance(jpush, JPushStandin) and isinstance(wechat, WeChatStandin)
        assert isinstance(twilio, TwilioStandin)
        jpush.unknown_devices.add(PUSH_ID)
        wechat.unsubscribed.add(OPENID)
        adapters = {
            "push": JPushAdapter(jpush.app_key, jpush.master_secret, api_base=jpush.base_url),
            "wechat": WeChatTemplateAdapter(wechat.appid, wechat.secret, api_base=wechat.base_url),
            "sms": TwilioSmsAdapter(twilio.account_sid, twilio.auth_token, "+15005550006",
                                    api_base=twilio.base_url),
        }
        dispatch_until_idle(Dispatcher(get_engine(db_url), adapters, StoreRenderer(), worker_id="w"))  # type: ignore[arg-type]
        assert [e.recipient for e in twilio.log.entries] == [PHONE]
        sid = twilio.log.entries[0].message_id

    assert signed(client, "/hooks/twilio/status", {"MessageSid": sid, "MessageStatus": "undelivered",
                                                   "ErrorCode": "30003", "To": PHONE}) == 200
    assert signed(client, "/hooks/twilio/status", {"MessageSid": "SM" + "f" * 32, "MessageStatus": "delivered",
                                                   "To": PHONE}) == 200
    assert signed(client, "/hooks/twilio/inbound", {"MessageSid": "SM" + "e" * 32, "From": PHONE,
                                                    "Body": f"I am at {EMAIL}, id {ID_NUMBER}"}) == 200
    assert signed(client, "/hooks/twilio/inbound", {"MessageSid": "SM" + "d" * 32, "From": "+8613912345678",
                                                    "Body": "TD"}) == 200

    for text, sender in ((f"I am {NATIONAL}", OPENID), ("TD", OPENID.replace("a9", "b8"))):
        assert wechat_push(client, sender, text) == 200

    written = every_log_line.getvalue() + printed.stdout + printed.stderr
    assert "jpush" in written.lower() and "wechat" in written.lower()  # the refusals were logged
    for value in (PHONE, NATIONAL, "13912345678", EMAIL, ID_NUMBER, ID_NUMBER[:-1] + "0", OPENID, PUSH_ID):
        lines = [line for line in written.splitlines() if value in line]
        assert lines == [], f"{value}: {lines}"
