"""The WeChat official account's server URL: signature checks, replay guard, and what a message asks.

Every request needs a valid signature (WeChat's sha1 of the sorted token/timestamp/nonce,
``WECHAT_TOKEN``) and a timestamp within 5 minutes of now; a bad or missing signature, or no
secret configured, is 403. Plain mode's signature does not cover the body, so a POST's nonce is
used once (kept in ``webhook_nonce``, written in the transaction that acts on the callback, with a
digest of the body it signed): the same request again is WeChat retrying a push whose answer came
late (it re-sends after 5 s, three times), answered ``success`` and not acted on twice; the
signature with another body is a replay, 403. With
``WECHAT_ENCODING_AES_KEY`` (and ``WECHAT_APPID``) set, only safe-mode callbacks are taken:
``msg_signature`` signs the encrypted body, which ``channels.wechat_crypto`` decrypts. XML goes
through defusedxml. Template-send results are delivery receipts (``engine.loop.delivery_receipts``),
texts go to ``channels.inbound``, unfollowing ends WeChat consent; the events these store are
acted on at once after the transaction commits (``engine.loop.hook_common.act_after_commit``).
Nothing is logged with an openid or message text.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import os
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from sqlalchemy import delete
from sqlmodel import Session, col

from channels.inbound import customers_by_openid, handle_inbound_text
from channels.optout import StoredEvent, insert_or_ignore, record_opt_out
from channels.wechat_crypto import WeChatCrypto, WeChatCryptoError, WrongAppId, msg_signature
from engine.loop.delivery_receipts import apply_receipt
from engine.loop.hook_common import (
    BadRequest,
    HookResponse,
    hook_session,
    hook_transaction,
    opt_out_keywords,
    provider_id,
    query_values,
    received_at,
)
from store.models import TouchStatus, WebhookNonce

log = logging.getLogger(__name__)

WECHAT_OK = "success"  # what WeChat expects back; anything else makes it retry and warn the user


# --- WeChat ---------------------------------------------------------------------------------------------

WECHAT_TOKEN_ENV = "WECHAT_TOKEN"  # nosec B105 # the name of an environment variable, not a secret
WECHAT_AES_KEY_ENV = "WECHAT_ENCODING_AES_KEY"
WECHAT_APPID_ENV = "WECHAT_APPID"
# How far a callback's timestamp may be from our clock, either way; its nonce is kept as long.
WECHAT_WINDOW_S = 300
_MAX_NONCE = 64  # WeChat's nonces are about ten digits; the key column holds provider:timestamp:nonce
# Expired nonces are deleted on the first callback a process takes and then every this many.
NONCE_PURGE_EVERY = 256
_nonce_claims = itertools.count()


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    """sha1 of the sorted, concatenated token, timestamp and nonce (WeChat's server verification)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode("utf-8")).hexdigest()  # nosec B324 # SHA-1 is what WeChat's callback signature specifies


@dataclass(frozen=True)
class WeChatSecrets:
    """The callback token, and in safe mode the account's decryption (EncodingAESKey and AppID)."""

    token: str
    crypto: WeChatCrypto | None = None


def wechat_secrets(token: str | None = None, encoding_aes_key: str | None = None,
                   appid: str | None = None) -> WeChatSecrets | None:
    """What the WeChat webhook checks with: arguments first, else ``WECHAT_TOKEN``,
    ``WECHAT_ENCODING_AES_KEY`` (safe mode when set) and ``WECHAT_APPID``; None (and an
    error logged) when that is not enough to check anything."""
    secret = token if token is not None else os.environ.get(WECHAT_TOKEN_ENV, "")
    if not secret:
        log.error("%s is not set: every WeChat webhook is refused", WECHAT_TOKEN_ENV)
        return None
    key = encoding_aes_key if encoding_aes_key is not None else os.environ.get(WECHAT_AES_KEY_ENV, "")
    if not key:
        return WeChatSecrets(secret)
    account = appid if appid is not None else os.environ.get(WECHAT_APPID_ENV, "")
    try:
        return WeChatSecrets(secret, WeChatCrypto(key, account))
    except ValueError as exc:  # the message never quotes the key
        log.error("%s is set but safe mode cannot be used (%s; %s names the account): every WeChat webhook "
                  "is refused", WECHAT_AES_KEY_ENV, exc, WECHAT_APPID_ENV)
        return None


def _digest_matches(expected: str, given: str) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters (a forged signature must be a 403, not a 500).
    return hmac.compare_digest(expected.encode(), given.lower().encode())


def _fresh_timestamp(raw: str) -> int | None:
    """The timestamp as an int when within ``WECHAT_WINDOW_S`` of now, else None.

    Against the machine's clock, not ``store.clock.utcnow``: a simulation (``journeys
    demo``) moves that through its own days, while WeChat stamps its callbacks in real time."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
        return None
    stamp = int(raw)
    return stamp if abs(time.time() - stamp) <= WECHAT_WINDOW_S else None


@dataclass(frozen=True)
class _SignedMessage:
    timestamp: int
    nonce: str
    xml: bytes  # the message itself: the body in plain mode, what <Encrypt> held in safe mode


def _signed_wechat_message(query: Mapping[str, str], body: bytes,
                           secrets: WeChatSecrets) -> _SignedMessage | HookResponse:
    """The POSTed message once its signature and timestamp check out, else the answer to give.

    Plain mode: ``signature`` (token, timestamp, nonce; the body is not covered). Safe mode:
    ``msg_signature`` over those and the ``<Encrypt>`` value, which is then decrypted; a
    plain-mode callback is refused then, since its body could be anyone's."""
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    encrypt_type = query.get("encrypt_type", "raw")
    encrypted = ""
    if secrets.crypto is None:
        if not _plain_signature_ok(query, secrets.token):
            return 403, "invalid signature"
        if encrypt_type != "raw":
            return 400, (f"encrypted (safe) mode is not configured: set {WECHAT_AES_KEY_ENV} and "
                         f"{WECHAT_APPID_ENV}, or set the official account to plaintext mode")
    else:
        if encrypt_type != "aes":
            return 403, "plain-text callbacks are refused: safe mode is configured, the body must be signed"
        signature = query.get("msg_signature", "")
        if not (signature and timestamp and nonce):
            return 403, "invalid signature"
        try:
            encrypted = _parse_wechat_xml(body).get("Encrypt", "")
        except BadRequest as exc:
            return 400, str(exc)
        if not encrypted:
            return 400, "safe-mode message without <Encrypt>"
        if not _digest_matches(msg_signature(secrets.token, timestamp, nonce, encrypted), signature):
            return 403, "invalid signature"
    stamp = _fresh_timestamp(timestamp)
    if stamp is None:
        return 403, f"timestamp missing or more than {WECHAT_WINDOW_S} s from now"
    if len(nonce) > _MAX_NONCE:
        return 400, "nonce too long"
    if secrets.crypto is None:
        return _SignedMessage(stamp, nonce, body)
    try:
        return _SignedMessage(stamp, nonce, secrets.crypto.decrypt(encrypted))
    except WrongAppId as exc:
        return 403, str(exc)
    except WeChatCryptoError as exc:
        return 400, str(exc)


def _plain_signature_ok(query: Mapping[str, str], token: str) -> bool:
    signature, timestamp, nonce = (query.get(k, "") for k in ("signature", "timestamp", "nonce"))
    if not (signature and timestamp and nonce):
        return False
    return _digest_matches(wechat_signature(token, timestamp, nonce), signature)


def claim_nonce(session: Session, provider: str, timestamp: int, nonce: str, body: bytes | None = None) -> bool:
    """Record a signed callback's nonce; False if it was used already (a replay).

    Call it in the transaction that acts on the callback: a failure rolls both back, so the
    provider's retry is not taken for a replay. On PostgreSQL a concurrent duplicate waits on
    the primary key and then finds it taken. With ``body``, what the nonce signed is kept beside it
    (a digest), so that the same request sent again can be told from a replay (``sent_again``)."""
    expires_at = datetime.fromtimestamp(timestamp + WECHAT_WINDOW_S, UTC)
    key = f"{provider}:{timestamp}:{nonce}"
    if not insert_or_ignore(session, WebhookNonce, {"key": key, "expires_at": expires_at}, "key"):
        return False
    if body is not None:
        session.add(WebhookNonce(key=_body_key(key, body), expires_at=expires_at))
    return True


def _body_key(key: str, body: bytes) -> str:
    return f"{key}:{hashlib.sha256(body).hexdigest()[:32]}"


def sent_again(session: Session, provider: str, timestamp: int, nonce: str, body: bytes) -> bool:
    """Whether a spent nonce was spent on this very body: the provider sending its request again (WeChat
    does when our answer was late), not someone replaying the signature with a body of their own."""
    key = _body_key(f"{provider}:{timestamp}:{nonce}", body)
    return session.get(WebhookNonce, key) is not None


def purge_expired_nonces(db_url: str | None = None, now: datetime | None = None) -> int:
    """Delete the nonces whose timestamps are no longer accepted (an index range scan); how many went."""
    cutoff = now or datetime.now(UTC)
    with hook_session(db_url) as session:
        result = session.execute(delete(WebhookNonce).where(col(WebhookNonce.expires_at) < cutoff))
        return int(result.rowcount)  # type: ignore[attr-defined]


def _parse_wechat_xml(body: bytes) -> dict[str, str]:
    # defusedxml refuses DTDs and entities whatever the encoding (a byte search for "<!DOCTYPE"
    # misses UTF-16): entity expansion is the classic way to make an XML parser eat the server.
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException:
        raise BadRequest("XML with a DOCTYPE or ENTITY is not accepted") from None
    except SafeET.ParseError as exc:
        raise BadRequest(f"body is not XML: {exc}") from None
    except LookupError:  # an XML declaration naming an encoding Python does not know
        raise BadRequest("body is not XML: unknown encoding") from None
    except ValueError:
        # Expat reads no multi-byte encoding but UTF-8 and UTF-16 (a declared gbk, big5, shift_jis): WeChat sends
        # UTF-8, and before safe mode checks msg_signature the outer body is read unsigned: this was a 500.
        raise BadRequest("body is not XML: multi-byte encodings other than UTF-8 and UTF-16 are not read") from None
    if root.tag != "xml":
        raise BadRequest(f"expected an <xml> message, got <{root.tag}>")
    return {child.tag: (child.text or "").strip() for child in root}


WECHAT_STATUS_REASON = {"failed:user block": "user blocked the official account",
                        "failed: system failed": "WeChat system failure"}


def handle_wechat(method: str, url: str, body: bytes, *, db_url: str | None = None, token: str | None = None,
                  encoding_aes_key: str | None = None, appid: str | None = None,
                  keywords: Iterable[str] | None = None, at: datetime | None = None,
                  act_later: list[StoredEvent] | None = None) -> HookResponse:
    """WeChat server URL: GET answers the echostr check; POST takes template-send results, texts, unfollows.

    Every request needs a valid signature and a timestamp within ``WECHAT_WINDOW_S`` of now;
    a POST's nonce is recorded (``webhook_nonce``) with what it does; a second use with the same body
    (WeChat's retry) is answered ``success`` without acting, with another body refused. ``token``,
    ``encoding_aes_key`` and ``appid`` default to the environment
    (``wechat_secrets``). ``at`` is when the message arrived: default now for template-send
    results and a text's own CreateTime for texts; a simulation replaying them
    (``journeys demo``) gives its clock. With ``act_later`` the events the message stored are
    handed to it rather than acted on: WeChat waits 5 s for the answer, then sends the message
    again (three times) and tells the follower the account is out of service, so the web route
    answers first and runs the planner for them after (``create_hooks_router``)."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))
    secrets = wechat_secrets(token, encoding_aes_key, appid)
    if secrets is None:
        return 403, "invalid signature"
    if method.upper() != "POST":
        # The echostr check is signed as plain mode signs, in safe mode too.
        if not _plain_signature_ok(query, secrets.token):
            return 403, "invalid signature"
        if _fresh_timestamp(query.get("timestamp", "")) is None:
            return 403, f"timestamp more than {WECHAT_WINDOW_S} s from now"
        if method.upper() != "GET":
            return 405, "method not allowed"
        echostr = query.get("echostr")
        if not echostr:
            return 400, "missing echostr"
        return 200, echostr
    signed = _signed_wechat_message(query, body, secrets)
    if isinstance(signed, tuple):
        return signed
    try:
        query_values(url)  # signed, and still no control character: the nonce is stored, where a NUL was a 500
        msg = _parse_wechat_xml(signed.xml)
        msg_type = msg.get("MsgType", "")
        event = msg.get("Event", "")
        openid = msg.get("FromUserName", "")
        if not msg_type or not openid:
            raise BadRequest("missing MsgType or FromUserName")
        provider_id(openid, "FromUserName")
        words = opt_out_keywords(keywords, db_url) if msg_type == "text" else []
        if next(_nonce_claims) % NONCE_PURGE_EVERY == 0:
            purge_expired_nonces(db_url)
        with hook_transaction(db_url, act_later=act_later) as (session, events):
            if not claim_nonce(session, "wechat", signed.timestamp, signed.nonce, body):
                if sent_again(session, "wechat", signed.timestamp, signed.nonce, body):
                    # WeChat's retry of a push whose answer came late: acted on once already, and WeChat
                    # documents retries, expecting "success" (anything else warns the follower).
                    log.info("WeChat callback sent again with its signature and body: answered, not acted on twice")
                    return 200, WECHAT_OK
                log.warning("WeChat callback refused: its nonce was used already (a replay)")
                return 403, "nonce already used (replayed request)"
            events.extend(_wechat_act(session, msg, msg_type, event, openid, words, at))
    except BadRequest as exc:
        return 400, str(exc)
    return 200, WECHAT_OK


def _wechat_act(session: Session, msg: Mapping[str, str], msg_type: str, event: str, openid: str,
                keywords: list[str], at: datetime | None) -> list[StoredEvent]:
    """Do what a signed WeChat message asks, in the caller's transaction; the events to hand on after it commits."""
    if msg_type == "event" and event == "TEMPLATESENDJOBFINISH":
        return _wechat_template_result(session, msg, at)
    if msg_type == "event" and event == "unsubscribe":
        return _wechat_unfollow(session, msg, openid)
    if msg_type == "text":
        msg_id = msg.get("MsgId") or msg.get("MsgID")
        if not msg_id:
            raise BadRequest("text message without MsgId")
        provider_id(msg_id, "MsgId")
        result = handle_inbound_text(session, channel="wechat", customers=customers_by_openid(session, openid),
                                     text=msg.get("Content", ""), message_id=msg_id,
                                     received_at=at or received_at(msg.get("CreateTime")), keywords=keywords)
        if result.kind == "unknown_sender":
            log.info("inbound wechat message from an unknown sender ignored")
        return list(result.events)
    # Other messages and events (images, menu clicks, follows) are not ours to act on.
    return []


def _wechat_template_result(session: Session, msg: Mapping[str, str],
                            at: datetime | None = None) -> list[StoredEvent]:
    msg_id = msg.get("MsgID") or msg.get("MsgId")
    raw_status = msg.get("Status", "")
    if not msg_id or not raw_status:
        raise BadRequest("TEMPLATESENDJOBFINISH without MsgID or Status")
    provider_id(msg_id, "MsgID")
    normalised = raw_status.strip().lower()
    error_class = reason = None
    if normalised == "success":
        new_status = TouchStatus.DELIVERED
    elif normalised.startswith("failed"):
        new_status = TouchStatus.FAILED
        reason = WECHAT_STATUS_REASON.get(normalised, raw_status)
        # A user who blocked the account cannot be reached there again; a system failure can.
        error_class = "permanent" if "user block" in normalised else "retryable"
    else:
        # Cut as Twilio's MessageStatus is: a signed push's 50 kB Status came back whole in the answer.
        raise BadRequest(f"unknown Status {raw_status[:40]!r}")
    # Parked when no touch carries the id yet: the push can beat dispatch's record of the send.
    return apply_receipt(session, provider="wechat", message_id=msg_id, provider_status=normalised,
                         new_status=new_status, error_code=normalised if error_class else None,
                         error_reason=reason, error_class=error_class, at=at, park_unknown=True).events


def _wechat_unfollow(session: Session, msg: Mapping[str, str], openid: str) -> list[StoredEvent]:
    """Unfollowing the official account ends WeChat consent: template messages cannot reach them anyway."""
    created = msg.get("CreateTime", "")
    events: list[StoredEvent] = []
    for customer in customers_by_openid(session, openid):
        assert customer.id is not None
        done = record_opt_out(session, customer.id, "wechat", source="wechat:unsubscribe",
                              dedup_key=f"optout:wechat:unfollow:{customer.id}:{created}",
                              detail={"event": "unsubscribe"})
        if done is not None:
            events.extend(done.events)
    return events
