"""WeChat callbacks cannot be replayed or forged (SPEC §6): stale or reused signatures, safe mode, hostile XML.

Plain mode signs only token, timestamp and nonce, so an old or captured signature with a
body of the attacker's choosing must get nowhere: the timestamp must be within five minutes
and each nonce is taken once, in the database (across threads, processes, PostgreSQL).
Safe mode (``WECHAT_ENCODING_AES_KEY``) signs and encrypts the body; the end-to-end tests run
the WeChat stand-in, which encrypts as WeChat does, against our router under real uvicorn.
The store is a migrated SQLite file, and PostgreSQL where the test says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

import engine.loop.wechat_hooks as wechat_hooks
from channels.base import OutboundMessage, RenderedMessage
from channels.wechat import WeChatTemplateAdapter
from channels.wechat_crypto import WeChatCrypto, WeChatCryptoError, WrongAppId
from engine.loop.receipts import (
    WECHAT_WINDOW_S,
    claim_nonce,
    create_hooks_router,
    handle_wechat,
    purge_expired_nonces,
)
from standins.wechat_api import WeChatStandin, new_encoding_aes_key, safe_mode_encrypt
from store.db import session_scope
from store.models import Customer, TouchStatus, WebhookNonce
from tests.db_support import stored_rows
from tests.loop.test_receipts import OPENID, WECHAT_TOKEN, make_customer, make_touch, outcomes, touch_row, wechat_xml
from tests.standin_support import serving
from tests.uvicorn_support import uvicorn_thread

BASE = "https://hooks.example.test"
APPID = "wxsecurity0000001"
AES_KEY = new_encoding_aes_key()
# 2001-09-09: what the outside review signed with, as a captured old signature would be.
OLD_TIMESTAMP = "1000000000"


@pytest.fixture(autouse=True)
def _plain_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECHAT_TOKEN", WECHAT_TOKEN)
    monkeypatch.delenv("WECHAT_ENCODING_AES_KEY", raising=False)
    monkeypatch.delenv("WECHAT_APPID", raising=False)
    monkeypatch.delenv("JOURNEYS_PUBLIC_URL", raising=False)


def signed_url(timestamp: str | None = None, nonce: str = "", token: str = WECHAT_TOKEN, **extra: str) -> str:
    """A plain-mode signed hook URL (now, and a nonce of its own, unless given)."""
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    nonce = nonce or os.urandom(6).hex()
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    query = urllib.parse.urlencode({"signature": signature, "timestamp": timestamp, "nonce": nonce,
                                    "openid": OPENID, **extra})
    return f"{BASE}/hooks/wechat?{query}"


def unfollow(openid: str = OPENID) -> bytes:
    return wechat_xml(FromUserName=openid, CreateTime="1764000000", MsgType="event", Event="unsubscribe")


def finish(msg_id: str, status: str = "success") -> bytes:
    return wechat_xml(FromUserName=OPENID, CreateTime="1764000000", MsgType="event", Event="TEMPLATESENDJOBFINISH",
                      MsgID=msg_id, Status=status)


def consent_wechat(url: str, customer_id: int) -> bool:
    with session_scope(url) as s:
        customer = s.get(Customer, customer_id)
        assert customer is not None
        return customer.consent_wechat


def nonce_keys(url: str) -> list[str]:
    return sorted(row.key for row in stored_rows(url, WebhookNonce))


# --- plain mode: timestamps and nonces ----------------------------------------------------------------------


def test_a_signature_from_2001_with_a_forged_unsubscribe_changes_nothing(db_url: str) -> None:
    """The review's attack: an old signature (valid for the token) and a body of the attacker's choosing."""
    customer = make_customer(db_url)
    status, reply = handle_wechat("POST", signed_url(OLD_TIMESTAMP, "n0nce"), unfollow(), db_url=db_url)
    assert (status, "timestamp" in reply) == (403, True)
    assert consent_wechat(db_url, customer) is True
    assert outcomes(db_url) == []


@pytest.mark.parametrize("skew", [-(WECHAT_WINDOW_S + 120), WECHAT_WINDOW_S + 120])
def test_timestamps_outside_the_window_are_refused_inside_accepted(db_url: str, skew: int) -> None:
    customer = make_customer(db_url)
    outside = str(int(time.time()) + skew)
    assert handle_wechat("POST", signed_url(outside), unfollow(), db_url=db_url)[0] == 403
    assert handle_wechat("GET", signed_url(outside, echostr="e1"), b"", db_url=db_url)[0] == 403
    assert consent_wechat(db_url, customer) is True
    # A little clock skew either way is WeChat's and ours, not an attack.
    inside = str(int(time.time()) + skew // 3)
    assert handle_wechat("GET", signed_url(inside, echostr="e2"), b"", db_url=db_url) == (200, "e2")
    assert handle_wechat("POST", signed_url(inside), unfollow(), db_url=db_url) == (200, "success")
    assert consent_wechat(db_url, customer) is False


def test_timestamps_that_are_not_plain_numbers_are_refused(db_url: str) -> None:
    customer = make_customer(db_url)
    now = int(time.time())
    for timestamp in (f"{now}.0", f" {now}", "١٧٦٤٠٠٠٠٠٠", "-1", "9" * 40):
        assert handle_wechat("POST", signed_url(timestamp), unfollow(), db_url=db_url)[0] == 403, timestamp
    assert consent_wechat(db_url, customer) is True


def test_a_fresh_signature_is_good_for_one_message(db_url: str) -> None:
    """Replaying a captured fresh signature with another body is refused: the nonce is spent."""
    customer = make_customer(db_url)
    touch = make_touch(db_url, customer, "w1", channel="wechat", provider_message_id="3001")
    now = int(time.time())
    url = signed_url(str(now), "n0nce")
    assert handle_wechat("POST", url, finish("3001"), db_url=db_url) == (200, "success")
    status, reply = handle_wechat("POST", url, unfollow(), db_url=db_url)
    assert (status, "nonce" in reply) == (403, True)
    # The very same request again is WeChat's retry of a push answered late: "success", not acted on twice.
    assert handle_wechat("POST", url, finish("3001"), db_url=db_url) == (200, "success")
    assert consent_wechat(db_url, customer) is True
    assert touch_row(db_url, touch).status == TouchStatus.DELIVERED
    assert len(outcomes(db_url)) == 1
    # The same nonce under another timestamp is another signature: WeChat's nonces are short.
    assert handle_wechat("POST", signed_url(str(now - 1), "n0nce"), unfollow(), db_url=db_url)[0] == 200


async def test_replay_through_the_router_is_403(db_url: str) -> None:
    customer = make_customer(db_url)
    app = FastAPI()
    app.include_router(create_hooks_router())
    url = signed_url()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        text_body = wechat_xml(FromUserName=OPENID, CreateTime="1764000000", MsgType="text", Content="你好",
                               MsgId="91")
        assert (await client.post(url, content=text_body)).status_code == 200
        response = await client.post(url, content=unfollow())
    assert response.status_code == 403
    assert consent_wechat(db_url, customer) is True


def test_a_nonce_spent_in_another_process_is_refused_here(migrated_any_db: str, project_root: Path) -> None:
    """The nonce is kept in the database, not in memory: it holds across workers and machines."""
    url = migrated_any_db
    customer = make_customer(url)
    hook = signed_url()
    child = subprocess.run(
        [sys.executable, "-c",
         "import sys; from engine.loop.receipts import handle_wechat; "
         "print(handle_wechat('POST', sys.argv[1], sys.argv[2].encode(), db_url=sys.argv[3])[0])",
         hook, wechat_xml(FromUserName=OPENID, MsgType="image", MsgId="77").decode(), url],
        cwd=project_root, env={**os.environ, "WECHAT_TOKEN": WECHAT_TOKEN}, capture_output=True, text=True,
        check=True,
    )
    assert child.stdout.strip() == "200", child.stderr
    assert handle_wechat("POST", hook, unfollow(), db_url=url)[0] == 403
    assert consent_wechat(url, customer) is True


@pytest.mark.postgres
def test_racing_replays_on_postgresql_act_once(pg_url: str) -> None:
    """Eight uses of one signature at once, with two bodies: one is taken, the others wait on the key; the
    copies of the taken body are answered as retries, the other body is refused."""
    from store.migrate import upgrade

    upgrade(pg_url)
    customer = make_customer(pg_url)
    touch = make_touch(pg_url, customer, "w1", channel="wechat", provider_message_id="4001")
    url = signed_url()
    start = threading.Barrier(8)
    answers: list[int] = []

    def post(body: bytes) -> None:
        start.wait()
        answers.append(handle_wechat("POST", url, body, db_url=pg_url)[0])

    bodies = [finish("4001", "failed:user block")] * 4 + [unfollow()] * 4
    threads = [threading.Thread(target=post, args=(body,)) for body in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The copies of the request that was taken are WeChat's retries of it ("success"); the other body is refused.
    assert sorted(answers) == [200] * 4 + [403] * 4
    assert len(outcomes(pg_url)) == 1  # a failed receipt or an opt-out: whichever came first, never both
    receipt_applied = touch_row(pg_url, touch).status != TouchStatus.SENT
    opted_out = not consent_wechat(pg_url, customer)
    assert receipt_applied != opted_out


def test_a_failed_store_write_leaves_the_nonce_for_wechat_to_retry(db_url: str) -> None:
    """The nonce is written in the transaction that acts: a store failure (500) rolls both back."""
    from sqlalchemy import text

    from store.db import make_engine

    customer = make_customer(db_url)
    touch = make_touch(db_url, customer, "w1", channel="wechat", provider_message_id="5001")
    engine = make_engine(db_url)
    with engine.begin() as conn:  # a real failure of the store, as a full disk would be
        conn.execute(text("CREATE TRIGGER no_outcomes BEFORE INSERT ON outcome "
                          "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
    url = signed_url()
    with pytest.raises(Exception, match="disk full"):
        handle_wechat("POST", url, finish("5001"), db_url=db_url)
    assert nonce_keys(db_url) == []
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER no_outcomes"))
    engine.dispose()
    assert handle_wechat("POST", url, finish("5001"), db_url=db_url) == (200, "success")  # WeChat's retry
    assert touch_row(db_url, touch).status == TouchStatus.DELIVERED


def test_expired_nonces_are_purged_and_the_rest_kept(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    now = int(time.time())
    with session_scope(db_url) as s:
        assert claim_nonce(s, "wechat", now - 3 * WECHAT_WINDOW_S, "old1")
        assert claim_nonce(s, "wechat", now - 2 * WECHAT_WINDOW_S, "old2")
        assert claim_nonce(s, "wechat", now - 10, "recent")
        assert not claim_nonce(s, "wechat", now - 10, "recent")
    assert purge_expired_nonces(db_url) == 2
    assert nonce_keys(db_url) == [f"wechat:{now - 10}:recent"]
    assert purge_expired_nonces(db_url) == 0

    # The webhook purges on a process's first callback and then every NONCE_PURGE_EVERY.
    with session_scope(db_url) as s:
        claim_nonce(s, "wechat", now - 3 * WECHAT_WINDOW_S, "old3")
    monkeypatch.setattr(wechat_hooks, "_nonce_claims", itertools.count())
    hook = signed_url(str(now), "fresh")
    assert handle_wechat("POST", hook, wechat_xml(FromUserName="o_nobody", MsgType="image"), db_url=db_url)[0] == 200
    # The callback's nonce with the digest of the body it signed (a retry of it is told from a replay).
    assert [k.rsplit(":", 1)[0] if k.count(":") == 3 else k for k in nonce_keys(db_url)] == sorted(
        [f"wechat:{now - 10}:recent", f"wechat:{now}:fresh", f"wechat:{now}:fresh"])


def test_nonce_rows_expire_when_the_timestamp_leaves_the_window(db_url: str) -> None:
    stamp = int(time.time())
    with session_scope(db_url) as s:
        claim_nonce(s, "wechat", stamp, "n1")
    [row] = stored_rows(db_url, WebhookNonce)
    assert row.expires_at == datetime.fromtimestamp(stamp, UTC) + timedelta(seconds=WECHAT_WINDOW_S)


# --- hostile XML ----------------------------------------------------------------------------------------------


def test_utf16_doctype_cannot_smuggle_an_entity(db_url: str) -> None:
    """A DOCTYPE in UTF-16 slipped past a byte search for "<!DOCTYPE"; its entity spelled "unsubscribe"."""
    customer = make_customer(db_url)
    xml = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml [<!ENTITY ev "unsubscribe">]>'
           f'<xml><ToUserName>gh_test</ToUserName><FromUserName>{OPENID}</FromUserName>'
           '<CreateTime>1764000000</CreateTime><MsgType>event</MsgType><Event>&ev;</Event></xml>')
    for body in (xml.encode("utf-16"), xml.encode("utf-16-le"), xml.replace("UTF-16", "UTF-8").encode()):
        status, reply = handle_wechat("POST", signed_url(), body, db_url=db_url)
        assert (status, "DOCTYPE" in reply) == (400, True), (body[:20], reply)
    assert consent_wechat(db_url, customer) is True


def test_an_encoding_python_does_not_know_is_400_not_500(db_url: str) -> None:
    body = b'<?xml version="1.0" encoding="x-klingon"?><xml><MsgType>text</MsgType></xml>'
    assert handle_wechat("POST", signed_url(), body, db_url=db_url)[0] == 400


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "big5", "shift_jis"])
def test_a_multibyte_encoding_expat_cannot_read_is_400_signed_or_not(db_url: str, encoding: str) -> None:
    """Expat refuses every multi-byte encoding but UTF-8/16 with a ValueError: a declared gbk was a 500,
    in safe mode before any signature was checked (the outer body is read for its <Encrypt>)."""
    customer = make_customer(db_url)
    xml = (f'<?xml version="1.0" encoding="{encoding}"?><xml><ToUserName>gh_test</ToUserName>'
           f'<FromUserName>{OPENID}</FromUserName><CreateTime>1764000000</CreateTime>'
           '<MsgType>text</MsgType><Content>TD</Content><MsgId>24681</MsgId></xml>').encode(encoding)
    assert handle_wechat("POST", signed_url(), xml, db_url=db_url)[0] == 400
    assert safe(safe_url("not-signed-by-us"), xml, db_url)[0] == 400
    assert consent_wechat(db_url, customer) is True and outcomes(db_url) == []


@pytest.mark.parametrize("field", ["MsgId", "FromUserName"])
@pytest.mark.parametrize("value", ["1" * 20_000, "123\nFAKE LOG LINE", "o\tx", "o x", "ｏ１"])
def test_a_wechat_id_that_is_no_provider_id_is_refused_unused(db_url: str, field: str, value: str) -> None:
    """A signed message's MsgId or openid is checked before it reaches a query or a stored key (255
    characters at most: a 20,000-character MsgId was a 500 on PostgreSQL) or a log line."""
    customer = make_customer(db_url)
    fields = {"FromUserName": OPENID, "CreateTime": "1764000000", "MsgType": "text", "Content": "TD",
              "MsgId": "24680"} | {field: value}
    status, reply = handle_wechat("POST", signed_url(), wechat_xml(**fields), db_url=db_url)
    assert (status, reply) == (400, f"{field} is not a provider id (1 to 64 letters, digits, _ or -)")
    template_result = wechat_xml(FromUserName=OPENID, CreateTime="1764000000", MsgType="event",
                                 Event="TEMPLATESENDJOBFINISH", MsgID=value, Status="success")
    if field == "MsgId":
        assert handle_wechat("POST", signed_url(), template_result, db_url=db_url)[0] == 400
    assert outcomes(db_url) == [] and consent_wechat(db_url, customer) is True


def test_an_unknown_template_status_is_400_and_not_echoed_whole(db_url: str) -> None:
    status = "failed: " + "x" * 50_000
    body = wechat_xml(FromUserName=OPENID, CreateTime="1764000000", MsgType="event", Event="TEMPLATESENDJOBFINISH",
                      MsgID="24682", Status="delivered " + status)
    code, reply = handle_wechat("POST", signed_url(), body, db_url=db_url)
    assert (code, reply) == (400, f"unknown Status {('delivered ' + status)[:40]!r}")


@pytest.mark.parametrize("created", ["99999999999", "-99999999999", "1" * 5000])
def test_a_create_time_outside_the_years_taken_reads_as_now(db_url: str, created: str) -> None:
    make_customer(db_url)
    before = datetime.now(UTC)
    fields = {"FromUserName": OPENID, "CreateTime": created, "MsgType": "text", "Content": "你好", "MsgId": "13579"}
    assert handle_wechat("POST", signed_url(), wechat_xml(**fields), db_url=db_url)[0] == 200
    [reply] = outcomes(db_url, "replied")
    assert before - timedelta(seconds=1) <= reply.occurred_at.replace(tzinfo=UTC) <= datetime.now(UTC)


def test_no_product_module_imports_an_xml_parser_but_defusedxml(project_root: Path) -> None:
    """Untrusted XML goes through defusedxml: the standard library's parsers (and lxml) are imported nowhere."""
    parser_import = re.compile(r"^\s*(?:import|from)\s+(?:xml|lxml)\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(project_root))
        for package in ("engine", "channels", "store", "console", "standins")
        for path in (project_root / package).rglob("*.py")
        if parser_import.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


# --- safe mode ------------------------------------------------------------------------------------------------


def safe_url(body_encrypt: str, timestamp: str | None = None, nonce: str = "", token: str = WECHAT_TOKEN,
             **extra: str) -> str:
    from standins.wechat_api import msg_signature

    timestamp = str(int(time.time())) if timestamp is None else timestamp
    nonce = nonce or os.urandom(6).hex()
    plain = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    query = {"signature": plain, "timestamp": timestamp, "nonce": nonce, "openid": OPENID, "encrypt_type": "aes",
             "msg_signature": msg_signature(token, timestamp, nonce, body_encrypt), **extra}
    return f"{BASE}/hooks/wechat?{urllib.parse.urlencode(query)}"


def encrypted(xml: bytes, appid: str = APPID, key: str = AES_KEY) -> tuple[str, bytes]:
    value = safe_mode_encrypt(xml, key, appid)
    body = f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName><Encrypt><![CDATA[{value}]]></Encrypt></xml>"
    return value, body.encode()


def safe(url: str, body: bytes, db_url: str) -> tuple[int, str]:
    return handle_wechat("POST", url, body, db_url=db_url, encoding_aes_key=AES_KEY, appid=APPID)


def test_safe_mode_decrypts_and_acts(db_url: str) -> None:
    customer = make_customer(db_url)
    value, body = encrypted(unfollow())
    assert safe(safe_url(value), body, db_url) == (200, "success")
    assert consent_wechat(db_url, customer) is False


def test_safe_mode_refuses_plain_callbacks_and_forged_bodies(db_url: str) -> None:
    customer = make_customer(db_url)
    # A plain-mode callback, however well signed, names no body: refused once safe mode is on.
    assert safe(signed_url(), unfollow(), db_url)[0] == 403
    assert safe(signed_url(encrypt_type="raw"), unfollow(), db_url)[0] == 403
    # msg_signature signs the Encrypt value: another body under a captured signature is refused.
    genuine, _ = encrypted(finish("1"))
    _, forged = encrypted(unfollow())
    assert safe(safe_url(genuine), forged, db_url)[0] == 403
    # ... and so is a signature made without the token, or no msg_signature at all.
    value, body = encrypted(unfollow())
    assert safe(safe_url(value, token="guess"), body, db_url)[0] == 403
    assert safe(safe_url(value).replace("msg_signature=", "x="), body, db_url)[0] == 403
    # Compatibility mode adds plaintext fields beside <Encrypt>: only the signed, encrypted copy counts.
    value, body = encrypted(finish("1"))
    compat = body.replace(b"</xml>", b"<MsgType>event</MsgType><Event>unsubscribe</Event>"
                                     + f"<FromUserName>{OPENID}</FromUserName></xml>".encode())
    assert safe(safe_url(value), compat, db_url) == (200, "success")
    assert consent_wechat(db_url, customer) is True
    # The signed copy, a result for message 1, which no touch carries yet: kept for dispatch to record it.
    assert [o.kind for o in outcomes(db_url)] == ["receipt_parked"]


def test_safe_mode_checks_timestamp_nonce_and_appid(db_url: str) -> None:
    customer = make_customer(db_url)
    value, body = encrypted(unfollow())
    assert safe(safe_url(value, OLD_TIMESTAMP), body, db_url)[0] == 403
    value, body = encrypted(unfollow(), appid="wxsomeoneelse0001")
    status, reply = safe(safe_url(value), body, db_url)
    assert (status, "AppID" in reply) == (403, True)
    value, body = encrypted(unfollow(), key=new_encoding_aes_key())  # signed, but not our key
    assert safe(safe_url(value), body, db_url)[0] == 400
    assert consent_wechat(db_url, customer) is True
    value, body = encrypted(unfollow())
    url = safe_url(value)
    assert safe(url, body, db_url)[0] == 200
    assert safe(url, body, db_url) == (200, "success")  # the same request again: WeChat's retry, acted on once
    assert safe(url, encrypted(unfollow())[1], db_url)[0] == 403  # its signature with another body


def test_safe_mode_configuration_comes_from_the_environment(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    customer = make_customer(db_url)
    monkeypatch.setenv("WECHAT_ENCODING_AES_KEY", AES_KEY)
    monkeypatch.setenv("WECHAT_APPID", APPID)
    assert handle_wechat("POST", signed_url(), unfollow(), db_url=db_url)[0] == 403
    value, body = encrypted(unfollow())
    assert handle_wechat("POST", safe_url(value), body, db_url=db_url) == (200, "success")
    assert consent_wechat(db_url, customer) is False
    # The echostr check is signed as in plain mode, in safe mode too.
    assert handle_wechat("GET", signed_url(echostr="hello"), b"", db_url=db_url) == (200, "hello")

    # A key that is not one, or no AppID to check: refused with an error in the log, never quoting the key.
    monkeypatch.setenv("WECHAT_ENCODING_AES_KEY", "not-a-key-" + AES_KEY[:20])
    with caplog.at_level(logging.ERROR, logger="engine.loop.wechat_hooks"):
        assert handle_wechat("POST", safe_url(value), body, db_url=db_url)[0] == 403
        monkeypatch.setenv("WECHAT_ENCODING_AES_KEY", AES_KEY)
        monkeypatch.delenv("WECHAT_APPID")
        assert handle_wechat("POST", safe_url(value), body, db_url=db_url)[0] == 403
    assert "WECHAT_ENCODING_AES_KEY" in caplog.text and "WECHAT_APPID" in caplog.text
    assert AES_KEY[:20] not in caplog.text


def test_both_sides_reproduce_wechats_published_example() -> None:
    """WeChat's own sample (key, AppID and a fixed 16-byte prefix): our decryption and the stand-in's
    encryption, written apart, each agree with it, not merely with each other."""
    key, appid = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wxb11529c136998cb6"
    published = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    assert WeChatCrypto(key, appid).decrypt(published).decode() == "我是中文abcd123"
    assert safe_mode_encrypt("我是中文abcd123", key, appid, random_prefix=b"aaaabbbbccccdddd") == published


def test_decrypting_refuses_what_wechat_would_not_send() -> None:
    crypto = WeChatCrypto(AES_KEY, APPID)
    assert crypto.decrypt(safe_mode_encrypt("<xml/>", AES_KEY, APPID)) == b"<xml/>"
    assert crypto.decrypt(safe_mode_encrypt("", AES_KEY, APPID)) == b""
    with pytest.raises(WrongAppId):
        crypto.decrypt(safe_mode_encrypt("<xml/>", AES_KEY, APPID + "x"))
    for bad in ("", "not base64!", "QUJD", "A" * 44, safe_mode_encrypt("<xml/>", new_encoding_aes_key(), APPID)):
        with pytest.raises(WeChatCryptoError):
            crypto.decrypt(bad)
    for key in ("", AES_KEY[:-1], AES_KEY + "A", AES_KEY[:-1] + "+"):
        with pytest.raises(ValueError):
            WeChatCrypto(key, APPID)
    with pytest.raises(ValueError):
        WeChatCrypto(AES_KEY, "")


# --- end to end: the stand-in pushes in safe mode to our router under uvicorn ----------------------------------


@pytest.fixture
def hooks(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Our webhooks (FastAPI router under uvicorn) on loopback; yields the base URL."""
    app = FastAPI()
    app.include_router(create_hooks_router(db_url))
    with uvicorn_thread(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def safe_standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[WeChatStandin]:
    standin = WeChatStandin(appid=APPID, encoding_aes_key=AES_KEY, callback_token="e2e-callback-token")
    monkeypatch.setenv("WECHAT_TOKEN", standin.callback_token)
    monkeypatch.setenv("WECHAT_ENCODING_AES_KEY", AES_KEY)
    monkeypatch.setenv("WECHAT_APPID", APPID)
    yield from serving(standin)


def template_message(openid: str) -> OutboundMessage:
    content = RenderedMessage(channel="wechat", template="renewal", locale="zh-CN", wechat_template_id="TPL_RENEWAL",
                              wechat_url="https://m.example.com/policy/renew?p=1",
                              wechat_data={"first": "您的车险即将到期", "remark": "点击续保"})
    return OutboundMessage(1, "c1:renewal:s1:2026-W48", openid, content)


async def test_standin_pushes_in_safe_mode_and_we_act_on_it(db_url: str, hooks: str,
                                                            safe_standin: WeChatStandin) -> None:
    standin = safe_standin
    customer = make_customer(db_url)
    async with aclosing(WeChatTemplateAdapter(standin.appid, standin.secret, api_base=standin.base_url,
                                              timeout=5)) as adapter:
        [sent] = await adapter.send_batch([template_message(OPENID)])
        assert sent.ok and sent.provider_message_id
        touch = make_touch(db_url, customer, "w1", channel="wechat", provider_message_id=sent.provider_message_id)
        # From here the stand-in pushes its events to us, as WeChat does after a send.
        standin.callback_url = f"{hooks}/hooks/wechat"
        [other] = await adapter.send_batch([template_message("o_not_ours")])
        assert other.ok
    await asyncio.to_thread(standin.run, standin.drain_callbacks(), 30)
    assert await asyncio.to_thread(standin.run, standin.push_finish(OPENID, sent.provider_message_id)) == 200
    assert await asyncio.to_thread(standin.run, standin.inject_text(OPENID, "退订")) == 200

    pushes = standin.callbacks_sent
    assert [(p["status"], p["reply"]) for p in pushes] == [(200, "success")] * 3
    for push in pushes:
        assert push["query"]["encrypt_type"] == "aes" and push["query"]["msg_signature"]
        assert "<Encrypt>" in push["body"] and "TEMPLATESENDJOBFINISH" not in push["body"]
        assert "退订" not in push["body"]
    assert touch_row(db_url, touch).status == TouchStatus.DELIVERED
    # The "退订" answers the marketing message just delivered: WeChat marketing is withdrawn there
    # (consent per purpose, tests/channels/test_consent_by_purpose.py); service messages still come.
    with session_scope(db_url) as s:
        row = s.get(Customer, customer)
        assert row is not None and (row.consent_wechat, row.consent_wechat_marketing) == (True, False)

    # What an eavesdropper kept of those pushes is worth nothing now: sent again whole, each is taken for
    # WeChat's retry of it ("success") and changes nothing.
    before = len(outcomes(db_url))
    async with httpx.AsyncClient() as client:
        for push in pushes:
            again = await client.post(push["url"], params=push["query"], content=push["body"].encode())
            assert (again.status_code, again.text) == (200, "success")
    assert len(outcomes(db_url)) == before


@pytest.mark.parametrize(("appid", "aes_key"), [
    pytest.param(APPID, None, id="plain-mode-to-a-safe-mode-endpoint"),
    pytest.param("wxanotheraccount01", AES_KEY, id="another-account"),
])
async def test_standin_not_matching_our_account_is_refused(db_url: str, hooks: str, monkeypatch: pytest.MonkeyPatch,
                                                           appid: str, aes_key: str | None) -> None:
    customer = make_customer(db_url)
    with WeChatStandin(appid=appid, encoding_aes_key=aes_key, callback_token="e2e-callback-token") as standin:
        assert isinstance(standin, WeChatStandin)
        monkeypatch.setenv("WECHAT_TOKEN", standin.callback_token)
        monkeypatch.setenv("WECHAT_ENCODING_AES_KEY", AES_KEY)
        monkeypatch.setenv("WECHAT_APPID", APPID)
        status = await asyncio.to_thread(standin.run, standin.inject_text(OPENID, "TD", f"{hooks}/hooks/wechat"))
    assert status == 403
    assert consent_wechat(db_url, customer) is True
