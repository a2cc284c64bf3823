"""Fuzzing the webhook handlers: arbitrary bodies, headers, signatures and URLs never raise and
never answer 500; unsigned requests are refused (403, or 400 for a body that is not even a
form); validly signed requests with garbage in them are 400 (or 200 when what arrived happens
to be a well-formed callback). The handlers run against a real migrated SQLite store.
"""

from __future__ import annotations

import urllib.parse
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from engine.loop.receipts import handle_twilio_inbound, handle_twilio_status, handle_wechat, wechat_signature

TWILIO_TOKEN = "fuzz-twilio-token"
WECHAT_TOKEN = "fuzz-wechat-token"
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


def _wechat_query(signed: bool, extra: dict[str, str], signature: str) -> dict[str, str]:
    query = {"timestamp": "1764000000", "nonce": "n0nce", **extra}
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


@FUZZ
@given(body=st.one_of(st.binary(max_size=200), xml_fields.map(_xml)), method=st.sampled_from(["GET", "POST", "PUT"]),
       extra=queries, signature=text)
@example(body=b"", method="GET", extra={}, signature="\x80")  # found by this test: was a TypeError (500)
def test_wechat_unsigned_anything_is_403(db_url: str, body: bytes, method: str, extra: dict[str, str],
                                         signature: str) -> None:
    query = _wechat_query(False, {k: v for k, v in extra.items() if k not in ("timestamp", "nonce")}, signature)
    assume(query["signature"].lower() != wechat_signature(WECHAT_TOKEN, "1764000000", "n0nce"))
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
def test_wechat_signed_garbage_is_400_never_500(db_url: str, body: bytes, raw: bool) -> None:
    query = _wechat_query(True, {} if raw else {"encrypt_type": "aes"}, "")
    status, reply = handle_wechat("POST", _url("/hooks/wechat", query), body, db_url=db_url)
    _record("wechat-signed", status)
    assert status in (200, 400), (status, reply)
    if not raw or not body.lstrip().startswith(b"<xml>"):
        assert status == 400, (body, reply)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    by_status = ", ".join(f"{k}={v}" for k, v in sorted(stats.items()) if k != "cases")
    print(f"\nwebhook fuzz: {stats['cases']} requests, 0 exceptions, 0 answers of 500 ({by_status})")
