"""Fuzzing the webhook handlers: arbitrary bodies, headers, signatures and URLs never raise and
never answer 500; unsigned requests are refused (403, or 400 for a body that is not even a
form); validly signed requests with garbage in them are 400 (or 200 when what arrived happens
to be a well-formed callback). WeChat is fuzzed in plain and in safe (encrypted) mode. The
handlers run against a real migrated SQLite store.
"""

from __future__ import annotations

import base64
import secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from engine.loop.receipts import handle_twilio_inbound, handle_twilio_status, handle_wechat, wechat_signature
from standins.wechat_api import msg_signature, new_encoding_aes_key, safe_mode_encrypt

TWILIO_TOKEN = "fuzz-twilio-token"
WECHAT_TOKEN = "fuzz-wechat-token"
WECHAT_APPID = "wxfuzz0000000001"
WECHAT_AES_KEY = new_encoding_aes_key()
BASE = "https://hooks.example.com"
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
stats: Counter[str] = Counter()

text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
form_keys = st.sampled_from(["MessageSid", "MessageStatus", "ErrorCode", "From", "To", "Body", "AccountSid",
                             "SmsSid", "X", ""])
status_words = st.sampled_from(["queued", "sent", "delivered", "undelivered", "failed", "read", "canceled",
                                "DELIVERED", "bogus", "", "sent\x00"])
garbage_forms = st.dictionaries(form_keys, st.one_of(text, status_words, st.sampled_from(["30003", "-1", "1e9", "x"])),
                                max_size=6)
headers = st.dictionaries(st.sampled_from(["X-Twilio-Signature", "x-twilio-signature", "Content-Type", "Host", "X"]),
                          text, max_size=4)
queries = st.dictionaries(st.sampled_from(["touch_key", "a", "signature", "timestamp", "nonce", "echostr",
                                           "encrypt_type"]), text, max_size=3)


def _record(kind: str, status: int) -> None:
    stats[f"{kind}:{status}"] += 1
    stats["cases"] += 1


@pytest.fixture(autouse=True)
def _secrets(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("WECHAT_TOKEN", WECHAT_TOKEN)
    monkeypatch.delenv("WECHAT_ENCODING_AES_KEY", raising=False)  # plain mode unless the test passes a key
    monkeypatch.setenv("WECHAT_APPID", WECHAT_APPID)
    yield


def _url(path: str, query: dict[str, str]) -> str:
    return f"{BASE}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")


@FUZZ
@given(body=st.binary(max_size=300), hdrs=headers, query=queries, inbound=st.booleans())
@example(body=b"MessageSid=SM1&MessageStatus=delivered", hdrs={"X-Twilio-Signature": "AAAA"}, query={},
         inbound=False)
def test_twilio_unsigned_anything_is_refused(db_url: str, body: bytes, hdrs: dict[str, str],
                                             query: dict[str, str], inbound: bool) -> None:
    handler = handle_twilio_inbound if inbound else handle_twilio_status
    status, reply = handler(_url("/hooks/twilio/x", query), hdrs, body, db_url=db_url)
    _record("twilio-unsigned", status)
    assert status in (400, 403), (status, reply)


@FUZZ
@given(form=garbage_forms, query=queries, inbound=st.booleans())
def test_twilio_signed_garbage_is_400_never_500(db_url: str, form: dict[str, str], query: dict[str, str],
                                                inbound: bool) -> None:
    url = _url("/hooks/twilio/x", query)
    body = urllib.parse.urlencode(form).encode()
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    handler = handle_twilio_inbound if inbound else handle_twilio_status
    status, reply = handler(url, {"X-Twilio-Signature": signature}, body, db_url=db_url)
    _record("twilio-signed", status)
    assert status in (200, 400), (status, reply)
    required = ("From", "MessageSid") if inbound else ("MessageSid", "MessageStatus")
    if any(not form.get(name) for name in required):
        assert status == 400, (form, reply)


@FUZZ
@given(form=garbage_forms.filter(lambda f: bool(f.get("MessageSid")) and bool(f.get("MessageStatus"))))
def test_twilio_signed_bad_status_or_code_is_400(db_url: str, form: dict[str, str]) -> None:
    """A status Twilio never sends, or an ErrorCode that is not a number, is 400 and changes nothing."""
    url = _url("/hooks/twilio/status", {})
    known = {"accepted", "scheduled", "queued", "sending", "sent", "delivered", "read", "undelivered", "failed",
             "canceled"}
    code = form.get("ErrorCode") or ""
    assume(form["MessageStatus"].lower() not in known or (code != "" and not _is_int(code)))
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    status, _ = handle_twilio_status(url, {"X-Twilio-Signature": signature}, urllib.parse.urlencode(form).encode(),
                                     db_url=db_url)
    _record("twilio-bad-field", status)
    assert status == 400


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def _fresh() -> dict[str, str]:
    """A timestamp of now and a nonce of its own: every signed request here is accepted once."""
    return {"timestamp": str(int(time.time())), "nonce": secrets.token_hex(8)}


def _wechat_query(signed: bool, extra: dict[str, str], signature: str) -> dict[str, str]:
    query = {**_fresh(), **extra}
    query["signature"] = wechat_signature(WECHAT_TOKEN, query["timestamp"], query["nonce"]) if signed else signature
    return query


xml_fields = st.dictionaries(
    st.sampled_from(["MsgType", "Event", "FromUserName", "ToUserName", "MsgID", "MsgId", "Status", "Content",
                     "CreateTime", "Bogus"]),
    st.one_of(text, st.sampled_from(["event", "text", "TEMPLATESENDJOBFINISH", "unsubscribe", "success",
                                     "failed:user block", "failed: system failed", "weird"])),
    max_size=7,
)


def _xml(fields: dict[str, str], root: str = "xml") -> bytes:
    from xml.sax.saxutils import escape

    # Text XML 1.0 cannot carry (control characters): those make the body malformed, which is fine too.
    inner = "".join(f"<{k}><![CDATA[{v.replace(']]>', '')}]]></{k}>" for k, v in fields.items())
    return f"<{escape(root)}>{inner}</{escape(root)}>".encode()


# XML that must be refused however it is dressed: DTDs in other encodings (a byte search for
# "<!DOCTYPE" misses UTF-16), and an encoding Python does not know (was a LookupError: 500).
_SNEAKY_XML = [
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><xml><MsgType>&a;</MsgType></xml>'
    .encode("utf-16"),
    '<!DOCTYPE xml [<!ENTITY a "text">]><xml><MsgType>&a;</MsgType><FromUserName>o1</FromUserName></xml>'
    .encode("utf-16-be"),
    b'<?xml version="1.0" encoding="x-unknown"?><xml><MsgType>text</MsgType></xml>',
]


@FUZZ
@given(body=st.one_of(st.binary(max_size=200), xml_fields.map(_xml)), method=st.sampled_from(["GET", "POST", "PUT"]),
       extra=queries, signature=text)
@example(body=b"", method="GET", extra={}, signature="\x80")  # found by this test: was a TypeError (500)
def test_wechat_unsigned_anything_is_403(db_url: str, body: bytes, method: str, extra: dict[str, str],
                                         signature: str) -> None:
    query = _wechat_query(False, {k: v for k, v in extra.items() if k not in ("timestamp", "nonce")}, signature)
    assume(query["signature"].lower() != wechat_signature(WECHAT_TOKEN, query["timestamp"], query["nonce"]))
    status, reply = handle_wechat(method, _url("/hooks/wechat", query), body, db_url=db_url)
    _record("wechat-unsigned", status)
    assert status == 403, (status, reply)


# Messages that get past the envelope checks (type and sender present), to reach the per-event code.
addressed = st.tuples(
    st.fixed_dictionaries({"MsgType": st.sampled_from(["event", "text", "image"]),
                           "FromUserName": st.sampled_from(["o1", "unknown", "x" * 70])}),
    xml_fields,
).map(lambda t: _xml({**t[1], **t[0]}))


@FUZZ
@given(body=st.one_of(st.binary(max_size=200), xml_fields.map(_xml), addressed, addressed,
                      st.tuples(st.sampled_from(["root", "XML", "msg"]), xml_fields).map(lambda t: _xml(t[1], t[0]))),
       raw=st.booleans())
@example(body=b'<!DOCTYPE x [<!ENTITY a "b">]><xml>&a;</xml>', raw=True)
@example(body=_xml({"MsgType": "event", "Event": "TEMPLATESENDJOBFINISH", "FromUserName": "o1"}), raw=True)
@example(body=_xml({"MsgType": "text", "FromUserName": "o1", "Content": "TD"}), raw=True)
@example(body=_SNEAKY_XML[0], raw=True)
@example(body=_SNEAKY_XML[1], raw=True)
@example(body=_SNEAKY_XML[2], raw=True)
def test_wechat_signed_garbage_is_400_never_500(db_url: str, body: bytes, raw: bool) -> None:
    query = _wechat_query(True, {} if raw else {"encrypt_type": "aes"}, "")
    status, reply = handle_wechat("POST", _url("/hooks/wechat", query), body, db_url=db_url)
    _record("wechat-signed", status)
    assert status in (200, 400), (status, reply)
    if not raw or not body.lstrip().startswith(b"<xml>"):
        assert status == 400, (body, reply)


def _safe_post(body: bytes, query: dict[str, str], db_url: str) -> tuple[int, str]:
    return handle_wechat("POST", _url("/hooks/wechat", query), body, db_url=db_url,
                         encoding_aes_key=WECHAT_AES_KEY, appid=WECHAT_APPID)


@FUZZ
@given(body=st.one_of(st.binary(max_size=200), xml_fields.map(_xml), addressed), extra=queries, signature=text,
       encrypted=st.one_of(text, st.just("")))
@example(body=b"<xml><Encrypt>AAAA</Encrypt></xml>", extra={"encrypt_type": "aes"}, signature="", encrypted="")
def test_wechat_safe_mode_unsigned_anything_is_refused(db_url: str, body: bytes, extra: dict[str, str],
                                                       signature: str, encrypted: str) -> None:
    """Safe mode: a plain-mode signature is not enough, whatever the body; a forged msg_signature is 403."""
    signed_plain = _wechat_query(True, {k: v for k, v in extra.items() if k not in ("timestamp", "nonce")}, "")
    if encrypted:
        body = f"<xml><Encrypt>{encrypted}</Encrypt></xml>".encode()
        signed_plain |= {"encrypt_type": "aes", "msg_signature": signature}
        assume(signature.lower() != msg_signature(WECHAT_TOKEN, signed_plain["timestamp"], signed_plain["nonce"],
                                                  encrypted.strip()))
    status, reply = _safe_post(body, signed_plain, db_url)
    _record("wechat-safe-unsigned", status)
    # 400 only when the body is not even XML with an <Encrypt>: nothing in it was acted on.
    assert status in (400, 403), (status, reply)
    if encrypted and status == 400:
        assert "Encrypt" in reply or "XML" in reply, reply


@FUZZ
@given(encrypted=st.one_of(text, st.binary(max_size=96).map(lambda b: base64.b64encode(b).decode())))
@example(encrypted="")
@example(encrypted="A" * 44)
def test_wechat_safe_mode_signed_garbage_is_400_never_500(db_url: str, encrypted: str) -> None:
    """A correctly signed <Encrypt> that is not WeChat's layout (bad base64, blocks, padding) is 400."""
    query = {**_fresh(), "encrypt_type": "aes"}
    body = f"<xml><Encrypt><![CDATA[{encrypted.replace(']]>', '')}]]></Encrypt></xml>".encode()
    value = encrypted.replace("]]>", "").strip()
    query["msg_signature"] = msg_signature(WECHAT_TOKEN, query["timestamp"], query["nonce"], value)
    status, reply = _safe_post(body, query, db_url)
    _record("wechat-safe-signed", status)
    assert status == 400, (encrypted, status, reply)


@FUZZ
@given(body=st.one_of(xml_fields.map(_xml), addressed, st.binary(max_size=120), st.sampled_from(_SNEAKY_XML)))
def test_wechat_safe_mode_signed_messages_never_500(db_url: str, body: bytes) -> None:
    """Whatever is encrypted (garbage, DTDs, real messages), a signed safe-mode callback is 200 or 400."""
    query = {**_fresh(), "encrypt_type": "aes"}
    encrypted = safe_mode_encrypt(body, WECHAT_AES_KEY, WECHAT_APPID)
    query["msg_signature"] = msg_signature(WECHAT_TOKEN, query["timestamp"], query["nonce"], encrypted)
    status, reply = _safe_post(f"<xml><Encrypt>{encrypted}</Encrypt></xml>".encode(), query, db_url)
    _record("wechat-safe-message", status)
    assert status in (200, 400), (status, reply)
    if body in _SNEAKY_XML:
        assert status == 400, reply


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    by_status = ", ".join(f"{k}={v}" for k, v in sorted(stats.items()) if k != "cases")
    print(f"\nwebhook fuzz: {stats['cases']} requests, 0 exceptions, 0 answers of 500 ({by_status})")
