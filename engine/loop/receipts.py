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
- Receipts move a touch forward only (sent → delivered | failed; a late 'sent' does not undo
  'delivered'), and each final receipt is one ``Outcome`` keyed ``<provider>:<id>:<status>``:
  a repeated callback changes nothing. A permanent delivery failure moves the touch to its
  next fallback channel (due now), as dispatch does for a permanent send error.
- Inbound texts go to ``channels.inbound``; events it stores are handed to
  ``channels.optout.event_listeners`` after the transaction commits.
- Nothing is logged with a phone number, e-mail address, openid or message text.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import os
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import or_, update
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
from store.clock import utcnow
from store.db import session_scope
from store.models import Customer, Outcome, Touch, TouchStatus

__all__ = [
    "HookResponse",
    "apply_receipt",
    "create_hooks_router",
    "event_listeners",
    "handle_twilio_inbound",
    "handle_twilio_status",
    "handle_unsubscribe",
    "handle_wechat",
    "record_event_hook",
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
        if error_class == "permanent" and touch.fallback_channels:
            # Same rule as dispatch for a permanent send error: next channel, due now, fresh attempts.
            values.update(
                status=TouchStatus.PLANNED, channel=touch.fallback_channels[0],
                fallback_channels=list(touch.fallback_channels[1:]), attempts=0, next_attempt_at=now,
                provider_message_id=None, claimed_by=None, sent_at=None,
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


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    """sha1 of the sorted, concatenated token, timestamp and nonce (WeChat's server verification)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode("utf-8")).hexdigest()


def _wechat_verified(query: Mapping[str, str], token: str | None) -> bool:
    secret = token if token is not None else os.environ.get("WECHAT_TOKEN", "")
    if not secret:
        log.error("WECHAT_TOKEN is not set: every WeChat webhook is refused")
        return False
    signature, timestamp, nonce = (query.get(k, "") for k in ("signature", "timestamp", "nonce"))
    if not (signature and timestamp and nonce):
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters (a forged signature must be a 403, not a 500).
    return hmac.compare_digest(wechat_signature(secret, timestamp, nonce).encode(), signature.lower().encode())


def _parse_wechat_xml(body: bytes) -> dict[str, str]:
    # No DTDs: entity expansion is the classic way to make an XML parser eat the server.
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise BadRequest("XML with a DOCTYPE or ENTITY is not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise BadRequest(f"body is not XML: {exc}") from None
    if root.tag != "xml":
        raise BadRequest(f"expected an <xml> message, got <{root.tag}>")
    return {child.tag: (child.text or "").strip() for child in root}


WECHAT_STATUS_REASON = {"failed:user block": "user blocked the official account",
                        "failed: system failed": "WeChat system failure"}


def handle_wechat(method: str, url: str, body: bytes, *, db_url: str | None = None, token: str | None = None,
                  keywords: Iterable[str] | None = None, at: datetime | None = None) -> HookResponse:
    """WeChat server URL: GET answers the echostr check; POST takes template-send results, texts, unfollows.

    ``at`` is when the message arrived: default now for template-send results and a text's
    own CreateTime for texts; a simulation replaying them (``journeys demo``) gives its clock."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))
    if not _wechat_verified(query, token):
        return 403, "invalid signature"
    if method.upper() == "GET":
        echostr = query.get("echostr")
        if not echostr:
            return 400, "missing echostr"
        return 200, echostr
    if method.upper() != "POST":
        return 405, "method not allowed"
    if query.get("encrypt_type", "raw") != "raw":
        return 400, "encrypted (safe) mode is not supported: set the official account to plaintext mode"
    try:
        msg = _parse_wechat_xml(body)
        msg_type = msg.get("MsgType", "")
        event = msg.get("Event", "")
        openid = msg.get("FromUserName", "")
        if not msg_type or not openid:
            raise BadRequest("missing MsgType or FromUserName")
        if msg_type == "event" and event == "TEMPLATESENDJOBFINISH":
            return _wechat_template_result(msg, db_url, at)
        if msg_type == "event" and event == "unsubscribe":
            return _wechat_unfollow(msg, openid, db_url)
        if msg_type == "text":
            msg_id = msg.get("MsgId") or msg.get("MsgID")
            if not msg_id:
                raise BadRequest("text message without MsgId")
            with session_scope(db_url) as session:
                result = handle_inbound_text(session, channel="wechat", customers=customers_by_openid(session, openid),
                                             text=msg.get("Content", ""), message_id=msg_id,
                                             received_at=at or received_at(msg.get("CreateTime")),
                                             keywords=_keywords(keywords))
            _after_commit(result, "wechat")
            return 200, WECHAT_OK
    except BadRequest as exc:
        return 400, str(exc)
    # Other messages and events (images, menu clicks, follows) are not ours to act on.
    return 200, WECHAT_OK


def _wechat_template_result(msg: Mapping[str, str], db_url: str | None, at: datetime | None = None) -> HookResponse:
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
    with session_scope(db_url) as session:
        apply_receipt(session, provider="wechat", message_id=msg_id, provider_status=normalised,
                      new_status=new_status, error_code=normalised if error_class else None,
                      error_reason=reason, error_class=error_class, at=at)
    return 200, WECHAT_OK


def _wechat_unfollow(msg: Mapping[str, str], openid: str, db_url: str | None) -> HookResponse:
    """Unfollowing the official account ends WeChat consent: template messages cannot reach them anyway."""
    created = msg.get("CreateTime", "")
    events: list[StoredEvent] = []
    with session_scope(db_url) as session:
        for customer in customers_by_openid(session, openid):
            assert customer.id is not None
            done = record_opt_out(session, customer.id, "wechat", source="wechat:unsubscribe",
                                  dedup_key=f"optout:wechat:unfollow:{customer.id}:{created}",
                                  detail={"event": "unsubscribe"})
            if done is not None:
                events.extend(done.events)
    notify_event_listeners(events)
    return 200, WECHAT_OK


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
