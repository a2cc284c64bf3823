"""Webhooks: delivery receipts, inbound replies and unsubscribe links (SPEC §6–8).

The handlers are plain functions (``(url, headers, body) -> (status_code, body)``) so the
web layer can mount them anywhere; ``create_hooks_router`` mounts them on a FastAPI
``APIRouter`` at ``/hooks/twilio/status``, ``/hooks/twilio/inbound``, ``/hooks/wechat``
(GET echostr check, POST events; ``engine.loop.wechat_hooks``) and ``/hooks/unsubscribe/{token}``.

- Signatures first: Twilio's ``X-Twilio-Signature`` (``RequestValidator``, auth token from
  ``TWILIO_AUTH_TOKEN``, over the URL as Twilio saw it: set ``JOURNEYS_PUBLIC_URL`` when a
  proxy sits in front) and WeChat's (``engine.loop.wechat_hooks``). A bad or missing signature,
  or no secret configured, is 403; a signed but malformed callback is 400; a store failure is
  500 so that the provider retries.
- Receipts: ``engine.loop.delivery_receipts.apply_receipt`` (forward only, once per final status,
  fallback on a permanent failure, a ``message.delivered``/``message.failed`` event). A WeChat result
  pushed before dispatch recorded its message is parked and applied by ``settle_parked_receipts``.
- Inbound texts go to ``channels.inbound``. Every event a webhook stores (reply, NPS answer,
  opt-out, receipt) is acted on at once once its transaction commits, through the same path as
  ``POST /api/events`` (``engine.loop.hook_common.act_after_commit``): the journey's next step or
  task exists before the provider gets its answer. WeChat's are acted on just after its answer
  (a background task of the response), since WeChat waits 5 s at most; they are committed before
  it, and one not acted on (the process stopped) is taken by the next plan run.
- Nothing is logged with a phone number, e-mail address, openid or message text. Twilio's message ids
  are checked (letters and digits, bounded) before use; every log record is one bounded line whatever
  a provider sent (``store.masking.log_safe``, in the record factory the console and CLI install).
"""

from __future__ import annotations

import html
import logging
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlmodel import select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from channels.errors import classify_twilio_delivery
from channels.inbound import customers_by_phone, handle_inbound_text
from channels.optout import (
    PUBLIC_URL_ENV,
    StoredEvent,
    event_listeners,
    public_url,
    read_unsubscribe_token,
    record_event_hook,
    record_opt_out,
)
from engine.loop.delivery_receipts import ReceiptResult, apply_parked_receipts, apply_receipt
from engine.loop.hook_common import (
    BadRequest,
    HookResponse,
    act_after_commit,
    hook_transaction,
    opt_out_keywords,
    provider_id,
    query_values,
)
from engine.loop.wechat_hooks import (
    WECHAT_OK,
    WECHAT_WINDOW_S,
    WeChatSecrets,
    claim_nonce,
    handle_wechat,
    purge_expired_nonces,
    wechat_secrets,
    wechat_signature,
)
from store.models import Customer, TouchStatus

__all__ = [
    "WECHAT_OK",
    "WECHAT_WINDOW_S",
    "BadRequest",
    "HookResponse",
    "ReceiptResult",
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
    "settle_parked_receipts",
    "wechat_secrets",
    "wechat_signature",
]

log = logging.getLogger(__name__)

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

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


# --- Twilio -------------------------------------------------------------------------------------------


_ERROR_CODE = re.compile(r"[0-9]{1,12}")


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


def _signed_twilio_form(url: str, headers: Mapping[str, str], body: bytes, auth_token: str | None,
                        *required: str) -> dict[str, str] | HookResponse:
    """The callback's form once its signature checks out, the fields ``required`` (``MessageSid`` among
    them) are there and its ``MessageSid`` is a provider id; else the answer to give (400 unreadable,
    403 unsigned)."""
    try:
        form = _parse_form(body)
    except BadRequest as exc:
        return 400, str(exc)
    if not _twilio_verified(url, headers, form, auth_token):
        return 403, "invalid signature"
    missing = [n for n in required if not form.get(n)]
    if missing:
        return 400, f"missing field(s): {', '.join(missing)}"
    try:
        provider_id(form["MessageSid"], "MessageSid")
    except BadRequest as exc:
        return 400, str(exc)
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
    validator = RequestValidator(token)
    if validator.validate(url, dict(form), signature):
        return True
    forwarded = _forwarded_url(url, headers)
    if forwarded is not None and validator.validate(forwarded, dict(form), signature):
        # Not taken: a forwarded host is anyone's to claim, and a signature another deployment on the same
        # account got (staging) would then pass here. But without this line the cause was a silent 403.
        log.warning("Twilio signed this request for the URL a proxy in front of us received (X-Forwarded-Proto/"
                    "-Host), not for the one we saw: refused. Set %s to the public base URL Twilio calls",
                    PUBLIC_URL_ENV)
    return False


def _forwarded_url(url: str, headers: Mapping[str, str]) -> str | None:
    """``url`` with the scheme and host a proxy says it received (the first of each), if it says another."""
    proto = (_header(headers, "X-Forwarded-Proto") or "").split(",")[0].strip().lower()
    host = (_header(headers, "X-Forwarded-Host") or "").split(",")[0].strip()
    if proto not in ("", "http", "https") or not (proto or host):
        return None
    parts = urllib.parse.urlsplit(url)
    forwarded = parts._replace(scheme=proto or parts.scheme, netloc=host or parts.netloc).geturl()
    return forwarded if forwarded != url else None


def _touch_key_from(url: str) -> str | None:
    return query_values(url).get("touch_key")


def handle_twilio_status(url: str, headers: Mapping[str, str], body: bytes, *, db_url: str | None = None,
                         auth_token: str | None = None, at: datetime | None = None) -> HookResponse:
    """Twilio status callback (``MessageSid``, ``MessageStatus``, ``ErrorCode``) → touch and outcome.

    ``at`` is when it arrived (default now): Twilio's callbacks carry no timestamp, and a
    simulation replaying them (``journeys demo``) runs on its own clock."""
    form = _signed_twilio_form(url, headers, body, auth_token, "MessageSid", "MessageStatus")
    if isinstance(form, tuple):
        return form
    sid, raw_status = form["MessageSid"], form["MessageStatus"].lower()
    try:
        if raw_status not in TWILIO_STATUS:
            raise BadRequest(f"unknown MessageStatus {raw_status[:40]!r}")
        code_text = form.get("ErrorCode") or None
        # Twilio's codes are five ASCII digits; Python's int() also reads "-1", " 7" and full-width "３００".
        if code_text is not None and not _ERROR_CODE.fullmatch(code_text):
            raise BadRequest("ErrorCode must be a number of at most 12 digits")
        code = int(code_text) if code_text else None
        touch_key = _touch_key_from(url)
    except BadRequest as exc:
        return 400, str(exc)
    except ValueError:
        return 400, "ErrorCode must be a number"
    new_status = TWILIO_STATUS[raw_status]
    error_class = reason = None
    if new_status == TouchStatus.FAILED:
        classified = classify_twilio_delivery(code)
        error_class, reason = classified.error_class, f"{raw_status}: {classified.reason}"
    with hook_transaction(db_url) as (session, events):
        result = apply_receipt(
            session, provider="twilio", message_id=sid, provider_status=raw_status, new_status=new_status,
            touch_key=touch_key, error_code=str(code) if code is not None else None,
            error_reason=reason, error_class=error_class, at=at,
        )
        events.extend(result.events)
    if result.outcome == "unknown_message":
        # Answered 200: Twilio cannot do better by repeating it, and a stray receipt is no error of theirs.
        log.warning("Twilio receipt for unknown message %s (%s)", sid, raw_status)
    return 200, result.outcome


def _twilio_blocked_sender(form: Mapping[str, str]) -> bool:
    """Twilio's Advanced Opt-Out matched one of its own keywords (``OptOutType`` STOP): it has blocked
    the sender, whatever our keyword list says. START and HELP change nothing here: consent withdrawn
    is given back by the customer through the ways ``store.consent`` accepts, not by a keyword."""
    return form.get("OptOutType", "").strip().upper() == "STOP"


def handle_twilio_inbound(url: str, headers: Mapping[str, str], body: bytes, *, db_url: str | None = None,
                          auth_token: str | None = None, keywords: Iterable[str] | None = None,
                          at: datetime | None = None) -> HookResponse:
    """An SMS from a customer (``From``, ``Body``, ``MessageSid``): opt-out, NPS answer or reply. Answers TwiML.

    ``at`` is when it arrived (default now; Twilio sends no timestamp)."""
    form = _signed_twilio_form(url, headers, body, auth_token, "From", "MessageSid")
    if isinstance(form, tuple):
        return form
    sender, sid = form["From"], form["MessageSid"]
    words = opt_out_keywords(keywords, db_url)
    with hook_transaction(db_url) as (session, events):
        customers = customers_by_phone(session, sender)
        result = handle_inbound_text(session, channel="sms", customers=customers, text=form.get("Body", ""),
                                     message_id=sid, received_at=at, keywords=words,
                                     blocked_by_provider=_twilio_blocked_sender(form))
        events.extend(result.events)
    if result.kind == "unknown_sender":
        log.info("inbound sms message from an unknown sender ignored")
    if result.confirmation:
        # The opt-out's confirmation, sent back by Twilio as the reply (it says what was withdrawn).
        return 200, ('<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
                     f"{html.escape(result.confirmation)}</Message></Response>")
    return 200, TWIML_EMPTY


def settle_parked_receipts(db_url: str | None = None, now: datetime | None = None) -> dict[str, int]:
    """Apply the receipts that came before their message was recorded (``delivery_receipts``), acting on the
    events they store as a webhook does; the outcome-ingest flow runs it."""
    with hook_transaction(db_url) as (session, events):
        applied, dropped, stored = apply_parked_receipts(session, now)
        events.extend(stored)
    return {"applied": applied, "dropped": dropped}


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
    with hook_transaction(db_url) as (session, events):
        customer = session.exec(select(Customer).where(Customer.external_id == external_id)).first()
        if customer is not None and customer.id is not None and getattr(customer, f"consent_{channel}"):
            consent_at = getattr(customer, f"consent_{channel}_at")
            # Keyed on the consent being withdrawn, so a later re-consent can be withdrawn again.
            since = consent_at.isoformat() if consent_at else "initial"
            done = record_opt_out(session, customer.id, channel, source=f"link:{channel}",
                                  dedup_key=f"optout:{channel}:link:{customer.id}:{since}")
            if done is not None:
                events.extend(done.events)
    return 200, _PAGE.format(title="已退订 / Unsubscribed", body="<p>您已退订。/ You have been unsubscribed.</p>")


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

    async def wechat(request: Request) -> Response:
        # WeChat gives up on an answer after 5 s (and retries, then shows the follower an error): what
        # the message asks is committed before the answer, the planner's work on it runs after it.
        later: list[StoredEvent] = []
        response = await run(handle_wechat, request.method, provider_url(request), await request.body(),
                             media_type="text/plain", act_later=later)
        if later:
            response.background = BackgroundTask(act_after_commit, later, db_url)
        return response

    async def unsubscribe(token: str, request: Request) -> Response:
        status, text = await run_in_threadpool(handle_unsubscribe, request.method, token, db_url=db_url)
        return Response(text, status_code=status, media_type="text/html; charset=utf-8")

    # One route per method, each with its own operation id: a route taking GET and POST gave both the
    # same id in the OpenAPI document, which client generators refuse.
    for method in ("GET", "POST"):
        router.add_api_route("/wechat", wechat, methods=[method], operation_id=f"wechat_{method.lower()}")
        router.add_api_route("/unsubscribe/{token}", unsubscribe, methods=[method],
                             operation_id=f"unsubscribe_{method.lower()}")
    return router
