"""Delivery receipts through the real webhook app: signatures, status mapping, idempotency, malformed input.

Requests are signed the way the providers sign them (Twilio's own ``RequestValidator``,
WeChat's sha1) and sent through the FastAPI router over ASGI; the store is a real
migrated SQLite database, and PostgreSQL for the idempotency test.
"""

from __future__ import annotations

import hashlib
import logging
import secrets as random_secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from channels.optout import StoredEvent, event_listeners
from engine.loop.receipts import create_hooks_router
from store.clock import utcnow
from store.db import session_scope
from store.models import Customer, Outcome, Touch, TouchStatus
from tests.db_support import inserted, stored, stored_rows

BASE = "https://hooks.example.test"
TWILIO_TOKEN = "test-twilio-auth-token"
WECHAT_TOKEN = "test-wechat-token"
PHONE = "+8613812345678"
OPENID = "oTestOpenId123"


# --- helpers shared with test_optout ---------------------------------------------------------------


def make_customer(url: str, external_id: str = "C-1", *, phone: str | None = PHONE, openid: str | None = OPENID,
                  email: str | None = "zhang.wei@example.com") -> int:
    now = utcnow()
    return inserted(url, Customer(external_id=external_id, name="张伟", phone=phone, wechat_openid=openid, email=email,
                                  tier="silver", created_at=now, updated_at=now, consent_sms=True, consent_wechat=True,
                                  consent_email=True, consent_sms_source="import",
                                  consent_sms_at=now - timedelta(days=90)))


def make_touch(url: str, customer_id: int, key: str, *, channel: str = "sms", status: str = TouchStatus.SENT,
               template: str = "silver_weekly_push", provider_message_id: str | None = None,
               fallback: list[str] | None = None, sent_ago: timedelta | None = timedelta(hours=1)) -> int:
    now = utcnow()
    sent_at = (now - sent_ago) if sent_ago is not None and status != TouchStatus.PLANNED else None
    return inserted(url, Touch(key=key, customer_id=customer_id, journey_id="j", journey_version="v1", step_id="s",
                               occurrence=key, category="marketing", channel=channel, template=template,
                               planned_for=now, due_at=now, status=status, provider_message_id=provider_message_id,
                               fallback_channels=fallback or [], sent_at=sent_at, created_at=now))


def touch_row(url: str, touch_id: int) -> Touch:
    return stored(url, Touch, touch_id)


def outcomes(url: str, kind: str | None = None) -> list[Outcome]:
    return stored_rows(url, Outcome, kind=kind)


def twilio_signed(path: str, form: dict[str, str], token: str = TWILIO_TOKEN) -> tuple[str, dict[str, str]]:
    url = BASE + path
    return url, {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, form)}


def wechat_query(token: str = WECHAT_TOKEN, timestamp: str | None = None, nonce: str | None = None,
                 **extra: str) -> str:
    """A plain-mode signed query, stamped now with a nonce of its own (each one is accepted once)."""
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    nonce = str(random_secrets.randbelow(10**10)) if nonce is None else nonce
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    return urllib.parse.urlencode({"signature": signature, "timestamp": timestamp, "nonce": nonce, **extra})


def wechat_xml(**fields: str) -> bytes:
    body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName>{body}</xml>".encode()


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("WECHAT_TOKEN", WECHAT_TOKEN)
    monkeypatch.delenv("WECHAT_ENCODING_AES_KEY", raising=False)  # plain mode unless a test says otherwise
    monkeypatch.delenv("JOURNEYS_PUBLIC_URL", raising=False)


@pytest.fixture
async def client(secrets: None) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(create_hooks_router())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


@pytest.fixture
def heard() -> Iterator[list[StoredEvent]]:
    """Events handed to listeners (as the planner would receive them)."""
    received: list[StoredEvent] = []
    event_listeners.append(received.append)
    yield received
    event_listeners.remove(received.append)


async def post_twilio(client: httpx.AsyncClient, path: str, form: dict[str, str], **kw: Any) -> httpx.Response:
    url, headers = twilio_signed(path, form, **kw)
    return await client.post(url, data=form, headers=headers)


async def status_callback(client: httpx.AsyncClient, sid: str, status: str, *, error: str | None = None,
                          query: str = "") -> httpx.Response:
    form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "ACtest", "To": PHONE}
    if error:
        form["ErrorCode"] = error
    return await post_twilio(client, "/hooks/twilio/status" + query, form)


# --- signatures ---------------------------------------------------------------------------------------


async def test_bad_signatures_are_refused_and_change_nothing(db_url: str, client: httpx.AsyncClient) -> None:
    customer = make_customer(db_url)
    touch = make_touch(db_url, customer, "k1", provider_message_id="SM1")
    form = {"MessageSid": "SM1", "MessageStatus": "delivered"}

    url, headers = twilio_signed("/hooks/twilio/status", form, token="someone-elses-token")
    assert (await client.post(url, data=form, headers=headers)).status_code == 403
    assert (await client.post(url, data=form)).status_code == 403  # no signature at all
    url, headers = twilio_signed("/hooks/twilio/status", {**form, "MessageStatus": "sent"})
    assert (await client.post(url, data=form, headers=headers)).status_code == 403  # signed other params
    url, headers = twilio_signed("/hooks/twilio/inbound", {"From": PHONE, "Body": "TD", "MessageSid": "SMin"},
                                 token="wrong")
    assert (await client.post(url, data={"From": PHONE, "Body": "TD", "MessageSid": "SMin"},
                              headers=headers)).status_code == 403

    assert (await client.get(f"/hooks/wechat?{wechat_query(token='wrong', echostr='e')}")).status_code == 403
    assert (await client.get("/hooks/wechat?echostr=e")).status_code == 403
    xml = wechat_xml(FromUserName=OPENID, MsgType="event", Event="TEMPLATESENDJOBFINISH", MsgID="1",
                     Status="success")
    assert (await client.post(f"/hooks/wechat?{wechat_query(token='wrong')}", content=xml)).status_code == 403

    assert touch_row(db_url, touch).status == TouchStatus.SENT
    assert outcomes(db_url) == []
    with session_scope(db_url) as s:
        assert s.get(Customer, customer).consent_sms is True  # type: ignore[union-attr]


async def test_unset_secrets_refuse_everything(db_url: str, client: httpx.AsyncClient,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    monkeypatch.delenv("WECHAT_TOKEN")
    assert (await status_callback(client, "SM1", "delivered")).status_code == 403
    assert (await client.get(f"/hooks/wechat?{wechat_query(echostr='e')}")).status_code == 403


async def test_wechat_server_verification_echoes(client: httpx.AsyncClient, db_url: str) -> None:
    response = await client.get(f"/hooks/wechat?{wechat_query(echostr='7523918')}")
    assert (response.status_code, response.text) == (200, "7523918")


async def test_public_url_is_what_twilio_signed(db_url: str, client: httpx.AsyncClient,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a proxy the app sees another host; the signature is over the public URL."""
    customer = make_customer(db_url)
    touch = make_touch(db_url, customer, "k1", provider_message_id="SM1")
    monkeypatch.setenv("JOURNEYS_PUBLIC_URL", "https://public.example.test")
    form = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    public = "https://public.example.test/hooks/twilio/status"
    headers = {"X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(public, form)}
    assert (await client.post("/hooks/twilio/status", data=form, headers=headers)).status_code == 200
    assert touch_row(db_url, touch).status == TouchStatus.DELIVERED


async def test_a_proxy_without_the_public_url_set_is_refused_and_says_why(
        db_url: str, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    """Behind a TLS proxy with JOURNEYS_PUBLIC_URL unset, every Twilio webhook was a 403 and nothing in the
    log said why. Still refused (a forwarded host is anyone's to claim), now with the setting named."""
    customer = make_customer(db_url)
    touch = make_touch(db_url, customer, "k1", provider_message_id="SM1")
    form = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    public = "https://public.example.test/hooks/twilio/status"
    headers = {"X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(public, form),
               "X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example.test"}
    with caplog.at_level(logging.WARNING, logger="engine.loop.receipts"):
        response = await client.post("http://10.0.0.5:8000/hooks/twilio/status", data=form, headers=headers)
        assert response.status_code == 403
        assert "JOURNEYS_PUBLIC_URL" in caplog.text and "X-Forwarded-Proto" in caplog.text
        caplog.clear()
        # Forwarded headers under a signature over some other URL: refused, and no word about a proxy.
        forged = {**headers, "X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(
            "https://elsewhere.example.test/hooks/twilio/status", form)}
        assert (await client.post("http://10.0.0.5:8000/hooks/twilio/status", data=form,
                                  headers=forged)).status_code == 403
        assert caplog.text == ""
    assert touch_row(db_url, touch).status == TouchStatus.SENT


# --- Twilio status mapping -----------------------------------------------------------------------------


async def test_twilio_statuses_move_the_touch_forward(db_url: str, client: httpx.AsyncClient) -> None:
    customer = make_customer(db_url)
    ok = make_touch(db_url, customer, "ok", status=TouchStatus.SENDING, provider_message_id="SMok")
    bad = make_touch(db_url, customer, "bad", provider_message_id="SMbad")

    for status in ("queued", "sent"):
        assert (await status_callback(client, "SMok", status)).status_code == 200
    assert touch_row(db_url, ok).status == TouchStatus.SENT
    response = await status_callback(client, "SMok", "delivered")
    assert (response.status_code, response.text) == (200, "applied")
    row = touch_row(db_url, ok)
    assert row.status == TouchStatus.DELIVERED and row.delivered_at is not None

    assert (await status_callback(client, "SMbad", "undelivered", error="30003")).status_code == 200
    row = touch_row(db_url, bad)
    assert row.status == TouchStatus.FAILED
    assert row.error_class == "permanent"
    assert row.error_reason is not None and "unreachable" in row.error_reason

    delivered, failed = outcomes(db_url, "delivered"), outcomes(db_url, "failed")
    assert [(o.touch_id, o.dedup_key) for o in delivered] == [(ok, "twilio:SMok:delivered")]
    assert [(o.touch_id, o.detail["error_code"], o.detail["error_class"]) for o in failed] == [
        (bad, "30003", "permanent")]


@pytest.mark.parametrize("first", ["delivered", "failed"])
async def test_duplicate_and_late_callbacks_change_nothing(migrated_any_db: str, client: httpx.AsyncClient,
                                                           first: str) -> None:
    url = migrated_any_db
    customer = make_customer(url)
    touch = make_touch(url, customer, "k1", provider_message_id="SM1")
    error = "30005" if first == "failed" else None

    assert (await status_callback(client, "SM1", first, error=error)).text == "applied"
    before = touch_row(url, touch)
    again = await status_callback(client, "SM1", first, error=error)
    assert (again.status_code, again.text) == (200, "duplicate")
    late = await status_callback(client, "SM1", "sent")
    assert (late.status_code, late.text) == (200, "unchanged")
    after = touch_row(url, touch)

    assert after.status == before.status == first
    assert (after.delivered_at, after.error_reason) == (before.delivered_at, before.error_reason)
    assert len(outcomes(url)) == 1


async def test_receipt_before_dispatch_recorded_the_sid_finds_the_touch_by_key(
        db_url: str, client: httpx.AsyncClient) -> None:
    customer = make_customer(db_url)
    touch = make_touch(db_url, customer, "c:j:s:2026-W48", status=TouchStatus.SENDING)
    query = "?" + urllib.parse.urlencode({"touch_key": "c:j:s:2026-W48"})
    assert (await status_callback(client, "SMfast", "delivered", query=query)).text == "applied"
    row = touch_row(db_url, touch)
    assert (row.status, row.provider_message_id) == (TouchStatus.DELIVERED, "SMfast")
    # A key pointing at a touch sent under another id is another attempt: left alone.
    other = make_touch(db_url, customer, "other", provider_message_id="SMreal")
    query = "?" + urllib.parse.urlencode({"touch_key": "other"})
    assert (await status_callback(client, "SMstale", "failed", error="30005", query=query)).text == "unknown_message"
    assert touch_row(db_url, other).status == TouchStatus.SENT


async def test_malformed_signed_callbacks_are_400(db_url: str, client: httpx.AsyncClient) -> None:
    customer = make_customer(db_url)
    make_touch(db_url, customer, "k1", provider_message_id="SM1")
    assert (await post_twilio(client, "/hooks/twilio/status", {"MessageSid": "SM1"})).status_code == 400
    response = await post_twilio(client, "/hooks/twilio/status", {"MessageSid": "SM1", "MessageStatus": "exploded"})
    assert (response.status_code, "exploded" in response.text) == (400, True)
    response = await status_callback(client, "SM1", "failed", error="thirty")
    assert response.status_code == 400
    assert (await client.post("/hooks/twilio/status", content=b"\xff\xfe=\x00")).status_code == 400
    assert (await post_twilio(client, "/hooks/twilio/inbound", {"Body": "hi"})).status_code == 400

    signed = f"/hooks/wechat?{wechat_query()}"
    assert (await client.post(signed, content=b"<xml><unclosed>")).status_code == 400
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><MsgType>&a;</MsgType></xml>'
    assert (await client.post(signed, content=bomb)).status_code == 400
    no_id = wechat_xml(FromUserName=OPENID, MsgType="event", Event="TEMPLATESENDJOBFINISH", Status="success")
    assert (await client.post(signed, content=no_id)).status_code == 400
    odd = wechat_xml(FromUserName=OPENID, MsgType="event", Event="TEMPLATESENDJOBFINISH", MsgID="9", Status="meh")
    assert (await client.post(signed, content=odd)).status_code == 400
    aes = f"/hooks/wechat?{wechat_query(encrypt_type='aes')}"
    assert (await client.post(aes, content=no_id)).status_code == 400
    assert outcomes(db_url) == []


async def test_unknown_message_is_acknowledged_and_ignored(db_url: str, client: httpx.AsyncClient) -> None:
    response = await status_callback(client, "SMnobody", "delivered")
    assert (response.status_code, response.text) == (200, "unknown_message")
    assert outcomes(db_url) == []


# --- WeChat template results --------------------------------------------------------------------------------


async def test_wechat_template_results(db_url: str, client: httpx.AsyncClient) -> None:
    customer = make_customer(db_url)
    ok = make_touch(db_url, customer, "w1", channel="wechat", provider_message_id="2001")
    blocked = make_touch(db_url, customer, "w2", channel="wechat", provider_message_id="2002", fallback=["sms"])
    flaky = make_touch(db_url, customer, "w3", channel="wechat", provider_message_id="2003")

    async def finish(msg_id: str, status: str) -> httpx.Response:
        return await client.post(f"/hooks/wechat?{wechat_query()}", content=wechat_xml(
            FromUserName=OPENID, CreateTime="1764000000", MsgType="event", Event="TEMPLATESENDJOBFINISH",
            MsgID=msg_id, Status=status))

    for msg_id, status in (("2001", "success"), ("2002", "failed:user block"), ("2003", "failed: system failed")):
        response = await finish(msg_id, status)
        assert (response.status_code, response.text) == (200, "success")
    assert (await finish("2001", "success")).status_code == 200  # WeChat repeats when we are slow

    assert touch_row(db_url, ok).status == TouchStatus.DELIVERED
    moved = touch_row(db_url, blocked)  # permanent: on to the next channel, due now
    assert (moved.status, moved.channel, moved.fallback_channels, moved.provider_message_id) == (
        TouchStatus.PLANNED, "sms", [], None)
    assert moved.error_class == "permanent" and moved.error_reason == "user blocked the official account"
    row = touch_row(db_url, flaky)
    assert (row.status, row.error_class) == (TouchStatus.FAILED, "retryable")
    assert sorted((o.kind, o.dedup_key) for o in outcomes(db_url)) == [
        ("delivered", "wechat:2001:success"),
        ("failed", "wechat:2002:failed:user block"),
        ("failed", "wechat:2003:failed: system failed"),
    ]
