"""Webhooks: delivery receipts, inbound replies and unsubscribe links (SPEC §6–8).

The handlers are plain functions (``(url, headers, body) -> (status_code, body)``) so the
web layer can mount them anywhere; ``create_hooks_router`` mounts them on a FastAPI
``APIRouter`` at ``/hooks/twilio/status``, ``/hooks/twilio/inbound``, ``/hooks/wechat``
(GET echostr check, POST events) and ``/hooks/unsubscribe/{token}``.

- Signatures first: Twilio's ``X-Twilio-Signature`` (``RequestValidator``, auth token from
  ``TWILIO_AUTH_TOKEN``, over the URL as Twilio saw it: set ``JOURNEYS_PUBLIC_URL`` when a
  proxy sits in front) and WeChat's sha1 of the sorted token/timestamp/nonce (``WECHAT_TOKEN``).
  A bad or missing signature, or no secret configured, is 403; a signed but malformed
  callback is 400; a store failure is 500 so that the provider retries.
- WeChat's plain-mode signature does not cover the body, so a WeChat callback's timestamp
  must be within 5 minutes of now and its nonce is used once (kept in ``webhook_nonce``,
  written in the transaction that acts on the callback). With ``WECHAT_ENCODING_AES_KEY``
  (and ``WECHAT_APPID``) set, only safe-mode callbacks are taken: ``msg_signature`` signs
  the encrypted body, which ``channels.wechat_crypto`` decrypts. XML goes through defusedxml.
- Receipts move a touch forward only (sent → delivered | failed; a late 'sent' does not undo
  'delivered'), and each final receipt is one ``Outcome`` keyed ``<provider>:<id>:<status>``:
  a repeated callback changes nothing. A permanent delivery failure moves the touch to the next
  consented, reachable channel of its fallback list (due now), the choice dispatch makes for a
  permanent send error (``channels.routing.first_usable``).
- Inbound texts go to ``channels.inbound``; events it stores are handed to
  ``channels.optout.event_listeners`` after the transaction commits.
- Nothing is logged with a phone number, e-mail address, openid or message text.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import itertools
import logging
import os
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from fastapi import APIRouter, Request, Response
from sqlalchemy import delete, or_, update
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from channels.errors import classify_twilio_delivery
from channels.inbound import InboundResult, customers_by_openid, customers_by_phone, handle_inbound_text
from channels.optout import (
    DEFAULT_OPT_OUT_KEYWORDS,
    StoredEvent,
    event_listeners,
    insert_or_ignore,
    notify_event_listeners,
    public_url,
    read_unsubscribe_token,
    record_event_hook,
    record_opt_out,
    touch_outcome,
)
from channels.routing import can_use, first_usable
from channels.wechat_crypto import WeChatCrypto, WeChatCryptoError, WrongAppId, msg_signature
from store.clock import utcnow
from store.db import session_scope
from store.models import Customer, Outcome, Touch, TouchStatus, WebhookNonce

__all__ = [
    "HookResponse",
    "WeChatSecrets",
    "apply_receipt",
    "claim_nonce",
    "create_hooks_router",
    "event_listeners",
    "handle_twilio_inbound",
    "handle_twilio_status",
    "handle_unsubscribe",
    "handle_wechat",
    "purge_expired_nonces",
    "record_event_hook",
    "wechat_secrets",
    "wechat_signature",
]

log = logging.getLogger(__name__)

HookResponse = tuple[int, str]
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
WECHAT_OK = "success"  # what WeChat expects back; anything else makes it retry and warn the user

# Twilio MessageStatus → touch status. Earlier states (accepted, queued, sending) carry
# nothing the touch does not already say, so they change nothing.
TWILIO_STATUS: dict[str, str | None] = {
    "accepted": None,
    "scheduled": None,
    "queued": None,
    "sending": None,
    "sent": TouchStatus.SENT,
    "delivered": TouchStatus.DELIVERED,
    "read": TouchStatus.DELIVERED,
    "undelivered": TouchStatus.FAILED,
    "failed": TouchStatus.FAILED,
    "canceled": TouchStatus.FAILED,
}

# Statuses a receipt may move a touch from. 'planned' is there for sent/delivered: a touch
# put back for a retry after a lost reply was in fact accepted, and must not go out twice.
_FORWARD_FROM: dict[str, tuple[str, ...]] = {
    TouchStatus.SENT: (TouchStatus.PLANNED, TouchStatus.SENDING),
    TouchStatus.DELIVERED: (TouchStatus.PLANNED, TouchStatus.SENDING, TouchStatus.SENT),
    TouchStatus.FAILED: (TouchStatus.SENDING, TouchStatus.SENT),
}


class BadRequest(ValueError):
    """A signed callback we cannot read: answered 400 with this message."""


# --- applying a receipt ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptResult:
    outcome: str  # applied | duplicate | unchanged | unknown_message | fell_back
    touch_id: int | None = None
    status: str | None = None


def _find_touch(session: Session, message_id: str, touch_key: str | None) -> Touch | None:
    touch = session.exec(select(Touch).where(Touch.provider_message_id == message_id)).first()
    if touch is None and touch_key:
        # The receipt can beat dispatch's write of the provider id; the key comes from the
        # signed callback URL. A touch already carrying another id belongs to another attempt.
        touch = session.exec(
            select(Touch).where(
                Touch.key == touch_key,
                or_(col(Touch.provider_message_id).is_(None), col(Touch.provider_message_id) == message_id),
            )
        ).first()
    return touch


def apply_receipt(
    session: Session,
    *,
    provider: str,
    message_id: str,
    provider_status: str,
    new_status: str | None,
    touch_key: str | None = None,
    error_code: str | None = None,
    error_reason: str | None = None,
    error_class: str | None = None,
    at: datetime | None = None,
) -> ReceiptResult:
    """Record one delivery receipt: outcome once per (message, status), touch status forward only."""
    now = at or utcnow()
    touch = _find_touch(session, message_id, touch_key)
    if touch is None or touch.id is None:
        return ReceiptResult("unknown_message")
    if new_status is None:
        return ReceiptResult("unchanged", touch.id, touch.status)

    if new_status in (TouchStatus.DELIVERED, TouchStatus.FAILED):
        detail: dict[str, Any] = {"provider": provider, "provider_message_id": message_id, "status": provider_status}
        if new_status == TouchStatus.FAILED:
            detail.update({"error_code": error_code, "reason": error_reason, "error_class": error_class})
        outcome = touch_outcome(touch, new_status, f"{provider}:{message_id}:{provider_status}", detail, now)
        if not insert_or_ignore(session, Outcome, outcome, "dedup_key"):
            return ReceiptResult("duplicate", touch.id, touch.status)

    guard = (
        col(Touch.id) == touch.id,
        col(Touch.status).in_(_FORWARD_FROM[new_status]),
        or_(col(Touch.provider_message_id).is_(None), col(Touch.provider_message_id) == message_id),
    )
    values: dict[str, Any] = {"status": new_status, "provider_message_id": message_id}
    if new_status in (TouchStatus.SENT, TouchStatus.DELIVERED):
        values["sent_at"] = touch.sent_at or now
    if new_status == TouchStatus.DELIVERED:
        values["delivered_at"] = now
    if new_status == TouchStatus.FAILED:
        values.update(error_class=error_class, error_reason=(error_reason or "")[:255] or None)
        customer = session.get(Customer, touch.customer_id) if error_class == "permanent" else None
        found = (first_usable(touch.fallback_channels, lambda channel: can_use(customer, channel))
                 if customer is not None else None)
        if found is not None:
            # The choice dispatch makes for a permanent send error (channels.routing): the next
            # consented, reachable channel of the touch's list, due now, attempts counted afresh.
            values.update(
                status=TouchStatus.PLANNED, channel=found[0], fallback_channels=found[1], attempts=0,
                next_attempt_at=now, provider_message_id=None, claimed_by=None, sent_at=None,
            )
    changed = session.execute(update(Touch).where(*guard).values(**values)).rowcount  # type: ignore[attr-defined]
    if not changed:
        return ReceiptResult("unchanged", touch.id, touch.status)
    if values["status"] == TouchStatus.PLANNED:
        log.info("touch %s: permanent %s delivery failure, falling back to %s", touch.id, provider, values["channel"])
        return ReceiptResult("fell_back", touch.id, TouchStatus.PLANNED)
    return ReceiptResult("applied", touch.id, new_status)


# --- Twilio -------------------------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _parse_form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("body is not a form (application/x-www-form-urlencoded, UTF-8)") from None
    return dict(pairs)


def _signed_twilio_form(url: str, headers: Mapping[str, str], body: bytes,
                        auth_token: str | None) -> dict[str, str] | HookResponse:
    """The callback's form once its signature checks out, else the answer to give (400 unreadable, 403 unsigned)."""
    try:
        form = _parse_form(body)
    except BadRequest as exc:
        return 400, str(exc)
    if not _twilio_verified(url, headers, form, auth_token):
        return 403, "invalid signature"
    return form


def _twilio_verified(url: str, headers: Mapping[str, str], form: Mapping[str, str],
                     auth_token: str | None) -> bool:
    token = auth_token if auth_token is not None else os.environ.get("TWILIO_AUTH_TOKEN", "")
    signature = _header(headers, "X-Twilio-Signature")
    if not token:
        log.error("TWILIO_AUTH_TOKEN is not set: every Twilio webhook is refused")
        return False
    if not signature:
        return False
    return bool(RequestValidator(token).validate(url, dict(form), signature))


def _touch_key_from(url: str) -> str | None:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    values = query.get("touch_key")
    return values[0] if values else None


def _required(form: Mapping[str, str], *names: str) -> list[str]:
    missing = [n for n in names if not form.get(n)]
    if missing:
        raise BadRequest(f"missing field(s): {', '.join(missing)}")
    return [form[n] for n in names]


def handle_twilio_status(url: str, headers: Mapping[str, str], body: bytes, *, db_url: str | None = None,
                         auth_token: str | None = None, at: datetime | None = None) -> HookResponse:
    """Twilio status callback (``MessageSid``, ``MessageStatus``, ``ErrorCode``) → touch and outcome.

    ``at`` is when it arrived (default now): Twilio's callbacks carry no timestamp, and a
    simulation replaying them (``journeys demo``) runs on its own clock."""
    form = _signed_twilio_form(url, headers, body, auth_token)
    if isinstance(form, tuple):
        return form
    try:
        sid, raw_status = _required(form, "MessageSid", "MessageStatus")
        raw_status = raw_status.lower()
        if raw_status not in TWILIO_STATUS:
            raise BadRequest(f"unknown MessageStatus {raw_status!r}")
        code_text = form.get("ErrorCode") or None
        code = int(code_text) if code_text else None
    except BadRequest as exc:
        return 400, str(exc)
    except ValueError:
        return 400, "ErrorCode must be a number"
    new_status = TWILIO_STATUS[raw_status]
    error_class = reason = None
    if new_status == TouchStatus.FAILED:
        classified = classify_twilio_delivery(code)
        error_class, reason = classified.error_class, f"{raw_status}: {classified.reason}"
    with session_scope(db_url) as session:
        result = apply_receipt(
            session, provider="twilio", message_id=sid, provider_status=raw_status, new_status=new_status,
            touch_key=_touch_key_from(url), error_code=str(code) if code is not None else None,
            error_reason=reason, error_class=error_class, at=at,
        )
    if result.outcome == "unknown_message":
        # Answered 200: Twilio cannot do better by repeating it, and a stray receipt is no error of theirs.
        log.warning("Twilio receipt for unknown message %s (%s)", sid, raw_status)
    return 200, result.outcome


def handle_twilio_inbound(url: str, headers: Mapping[str, str], body: bytes, *, db_url: str | None = None,
                          auth_token: str | None = None, keywords: Iterable[str] | None = None,
                          at: datetime | None = None) -> HookResponse:
    """An SMS from a customer (``From``, ``Body``, ``MessageSid``): opt-out, NPS answer or reply. Answers TwiML.

    ``at`` is when it arrived (default now; Twilio sends no timestamp)."""
    form = _signed_twilio_form(url, headers, body, auth_token)
    if isinstance(form, tuple):
        return form
    try:
        sender, sid = _required(form, "From", "MessageSid")
    except BadRequest as exc:
        return 400, str(exc)
    with session_scope(db_url) as session:
        customers = customers_by_phone(session, sender)
        result = handle_inbound_text(session, channel="sms", customers=customers, text=form.get("Body", ""),
                                     message_id=sid, received_at=at, keywords=_keywords(keywords))
    _after_commit(result, "sms")
    return 200, TWIML_EMPTY


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


def claim_nonce(session: Session, provider: str, timestamp: int, nonce: str) -> bool:
    """Record a signed callback's nonce; False if it was used already (a replay).

    Call it in the transaction that acts on the callback: a failure rolls both back, so the
    provider's retry is not taken for a replay. On PostgreSQL a concurrent duplicate waits on
    the primary key and then finds it taken."""
    expires_at = datetime.fromtimestamp(timestamp + WECHAT_WINDOW_S, UTC)
    return insert_or_ignore(session, WebhookNonce, {"key": f"{provider}:{timestamp}:{nonce}",
                                                    "expires_at": expires_at}, "key")


def purge_expired_nonces(db_url: str | None = None, now: datetime | None = None) -> int:
    """Delete the nonces whose timestamps are no longer accepted (an index range scan); how many went."""
    cutoff = now or datetime.now(UTC)
    with session_scope(db_url) as session:
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
    if root.tag != "xml":
        raise BadRequest(f"expected an <xml> message, got <{root.tag}>")
    return {child.tag: (child.text or "").strip() for child in root}


WECHAT_STATUS_REASON = {"failed:user block": "user blocked the official account",
                        "failed: system failed": "WeChat system failure"}


def handle_wechat(method: str, url: str, body: bytes, *, db_url: str | None = None, token: str | None = None,
                  encoding_aes_key: str | None = None, appid: str | None = None,
                  keywords: Iterable[str] | None = None, at: datetime | None = None) -> HookResponse:
    """WeChat server URL: GET answers the echostr check; POST takes template-send results, texts, unfollows.

    Every request needs a valid signature and a timestamp within ``WECHAT_WINDOW_S`` of now;
    a POST's nonce is recorded (``webhook_nonce``) with what it does, and a second use is
    refused. ``token``, ``encoding_aes_key`` and ``appid`` default to the environment
    (``wechat_secrets``). ``at`` is when the message arrived: default now for template-send
    results and a text's own CreateTime for texts; a simulation replaying them
    (``journeys demo``) gives its clock."""
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
        msg = _parse_wechat_xml(signed.xml)
        msg_type = msg.get("MsgType", "")
        event = msg.get("Event", "")
        openid = msg.get("FromUserName", "")
        if not msg_type or not openid:
            raise BadRequest("missing MsgType or FromUserName")
        words = _keywords(keywords) if msg_type == "text" else []
        if next(_nonce_claims) % NONCE_PURGE_EVERY == 0:
            purge_expired_nonces(db_url)
        with session_scope(db_url) as session:
            if not claim_nonce(session, "wechat", signed.timestamp, signed.nonce):
                log.warning("WeChat callback refused: its nonce was used already (a replay)")
                return 403, "nonce already used (replayed request)"
            events = _wechat_act(session, msg, msg_type, event, openid, words, at)
    except BadRequest as exc:
        return 400, str(exc)
    notify_event_listeners(events)
    return 200, WECHAT_OK


def _wechat_act(session: Session, msg: Mapping[str, str], msg_type: str, event: str, openid: str,
                keywords: list[str], at: datetime | None) -> list[StoredEvent]:
    """Do what a signed WeChat message asks, in the caller's transaction; the events to hand on after it commits."""
    if msg_type == "event" and event == "TEMPLATESENDJOBFINISH":
        _wechat_template_result(session, msg, at)
        return []
    if msg_type == "event" and event == "unsubscribe":
        return _wechat_unfollow(session, msg, openid)
    if msg_type == "text":
        msg_id = msg.get("MsgId") or msg.get("MsgID")
        if not msg_id:
            raise BadRequest("text message without MsgId")
        result = handle_inbound_text(session, channel="wechat", customers=customers_by_openid(session, openid),
                                     text=msg.get("Content", ""), message_id=msg_id,
                                     received_at=at or received_at(msg.get("CreateTime")), keywords=keywords)
        if result.kind == "unknown_sender":
            log.info("inbound wechat message from an unknown sender ignored")
        return list(result.events)
    # Other messages and events (images, menu clicks, follows) are not ours to act on.
    return []


def _wechat_template_result(session: Session, msg: Mapping[str, str], at: datetime | None = None) -> None:
    msg_id = msg.get("MsgID") or msg.get("MsgId")
    raw_status = msg.get("Status", "")
    if not msg_id or not raw_status:
        raise BadRequest("TEMPLATESENDJOBFINISH without MsgID or Status")
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
        raise BadRequest(f"unknown Status {raw_status!r}")
    apply_receipt(session, provider="wechat", message_id=msg_id, provider_status=normalised,
                  new_status=new_status, error_code=normalised if error_class else None,
                  error_reason=reason, error_class=error_class, at=at)


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


# --- unsubscribe links ---------------------------------------------------------------------------------

_PAGE = ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
         '<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title></head>'
         '<body style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em">{body}</body></html>')


def handle_unsubscribe(method: str, token: str, *, db_url: str | None = None) -> HookResponse:
    """GET shows a confirmation button (link scanners must not unsubscribe anyone); POST opts out.

    POST also serves RFC 8058 one-click unsubscribe (``List-Unsubscribe-Post``).
    """
    decoded = read_unsubscribe_token(token)
    if decoded is None:
        return 404, _PAGE.format(title="链接无效 / Invalid link",
                                 body="<p>链接无效或已过期。/ This link is not valid.</p>")
    external_id, channel = decoded
    if method.upper() == "GET":
        action = html.escape(token)
        return 200, _PAGE.format(
            title="退订 / Unsubscribe",
            body=(f'<form method="post" action="{action}"><p>确认退订此类消息？/ Stop these messages?</p>'
                  '<button type="submit">确认退订 / Unsubscribe</button></form>'),
        )
    if method.upper() != "POST":
        return 405, "method not allowed"
    events: list[StoredEvent] = []
    with session_scope(db_url) as session:
        customer = session.exec(select(Customer).where(Customer.external_id == external_id)).first()
        if customer is not None and customer.id is not None and getattr(customer, f"consent_{channel}"):
            consent_at = getattr(customer, f"consent_{channel}_at")
            # Keyed on the consent being withdrawn, so a later re-consent can be withdrawn again.
            since = consent_at.isoformat() if consent_at else "initial"
            done = record_opt_out(session, customer.id, channel, source=f"link:{channel}",
                                  dedup_key=f"optout:{channel}:link:{customer.id}:{since}")
            if done is not None:
                events.extend(done.events)
    notify_event_listeners(events)
    return 200, _PAGE.format(title="已退订 / Unsubscribed", body="<p>您已退订。/ You have been unsubscribed.</p>")


# --- shared ---------------------------------------------------------------------------------------------


def _keywords(keywords: Iterable[str] | None) -> list[str]:
    if keywords is not None:
        return list(keywords)
    try:
        from engine.language.paths import delivery_config_path
        from engine.language.settings_model import DeliveryConfig
        from engine.language.validation import load_config

        config, _problems = load_config(DeliveryConfig, delivery_config_path())
    except Exception:  # an unreadable config must not make an opt-out fail: fall back to the spec's words
        log.exception("delivery configuration unreadable; using the default opt-out keywords")
        config = None
    return list(config.opt_out_keywords) if config is not None else list(DEFAULT_OPT_OUT_KEYWORDS)


def _after_commit(result: InboundResult, channel: str) -> None:
    if result.kind == "unknown_sender":
        log.info("inbound %s message from an unknown sender ignored", channel)
    notify_event_listeners(result.events)


# --- FastAPI router ---------------------------------------------------------------------------------------
# (Request/Response are imported at module level: FastAPI reads the endpoints' annotations,
# which ``from __future__ import annotations`` turns into names looked up in this module.)


def provider_url(request: Request) -> str:
    """The URL as the provider called it: ``JOURNEYS_PUBLIC_URL`` + path + query when set (behind a proxy)."""
    if os.environ.get("JOURNEYS_PUBLIC_URL"):
        query = request.url.query
        return public_url() + request.url.path + (f"?{query}" if query else "")
    return str(request.url)


def create_hooks_router(db_url: str | None = None, *, prefix: str = "/hooks") -> APIRouter:
    """An ``APIRouter`` with every webhook; ``app.include_router(create_hooks_router())``."""
    router = APIRouter(prefix=prefix)

    async def run(handler: Callable[..., HookResponse], *args: Any, media_type: str, **kwargs: Any) -> Response:
        status, text = await run_in_threadpool(handler, *args, db_url=db_url, **kwargs)
        if status != 200:
            media_type = "text/plain"
        return Response(text, status_code=status, media_type=media_type)

    @router.post("/twilio/status")
    async def twilio_status(request: Request) -> Response:
        return await run(handle_twilio_status, provider_url(request), dict(request.headers), await request.body(),
                         media_type="text/plain")

    @router.post("/twilio/inbound")
    async def twilio_inbound(request: Request) -> Response:
        return await run(handle_twilio_inbound, provider_url(request), dict(request.headers),
                         await request.body(), media_type="text/xml")

    @router.api_route("/wechat", methods=["GET", "POST"])
    async def wechat(request: Request) -> Response:
        return await run(handle_wechat, request.method, provider_url(request), await request.body(),
                         media_type="text/plain")

    @router.api_route("/unsubscribe/{token}", methods=["GET", "POST"])
    async def unsubscribe(token: str, request: Request) -> Response:
        status, text = await run_in_threadpool(handle_unsubscribe, request.method, token, db_url=db_url)
        return Response(text, status_code=status, media_type="text/html; charset=utf-8")

    return router


def received_at(timestamp: str | None) -> datetime:
    """A provider's epoch-seconds timestamp as aware UTC, or now when absent or unreadable."""
    try:
        return datetime.fromtimestamp(int(timestamp or ""), UTC)
    except (ValueError, OverflowError, OSError):
        return utcnow()
