"""App push through JPush (极光推送) REST API v3, over ``httpx`` (with the aiohttp transport, as WeChat).

The documented protocol (docs.jiguang.cn, "Push API v3" and "Report API v3"):

- ``POST {api}/v3/push`` with HTTP Basic auth ``base64(appKey:masterSecret)`` and a JSON push
  object: ``platform`` (``all``), ``audience`` (``{"registration_id": [...]}``: one device here),
  ``notification`` (``alert`` plus per-platform ``android``/``ios`` with ``title`` and ``extras``)
  and ``options`` (``sendno``: our number echoed back; ``time_to_live``). Success is HTTP 200
  ``{"sendno": "...", "msg_id": "..."}``; a refusal is an HTTP 4xx with
  ``{"error": {"code": N, "message": "..."}}``.
- Receipts: ``POST {report}/v3/status/message`` with ``{"msg_id": N, "registration_ids": [...]}``
  answers per device ``{"<registration id>": {"status": S}}``: 0 delivered, 1 not delivered (yet),
  2 the id is not one of this app's, 3 it was not a target of that message, 4 system error.
  ``delivery_status`` asks it for up to 1,000 devices of one message per call.

JPush has no idempotency key and no lookup of a send by our number, so a request that may have
been taken without a definite answer (a lost reply, a 5xx) is class ``unknown`` and dispatch fails
it with that reason rather than push the customer twice. ``sendno`` carries a number derived from
the touch key, which the stand-in logs as the key (a repeat shows as a duplicate there).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
from httpx_aiohttp import HttpxAiohttpClient

from channels.base import OutboundMessage, SendResult
from channels.batching import run_bounded
from channels.errors import classify_jpush
from channels.http_client import NoCookies, unanswered

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.jpush.cn"
DEFAULT_REPORT_BASE = "https://report.jpush.cn"
TIME_TO_LIVE_S = 86_400  # an offline device gets the notification within a day, or not at all
# Receipt statuses of ``/v3/status/message``.
DELIVERED, NOT_DELIVERED, NOT_THIS_APP, NOT_TARGET, SYSTEM_ERROR = 0, 1, 2, 3, 4


def sendno(touch_key: str) -> int:
    """A positive 31-bit number per touch key: JPush echoes it, the stand-in logs it as the key."""
    return int.from_bytes(hashlib.sha256(touch_key.encode()).digest()[:4], "big") & 0x7FFFFFFF


def push_payload(message: OutboundMessage, *, production: bool = True) -> dict[str, Any]:
    content = message.content
    extras = {"template": content.template, "category": message.category}
    return {
        "platform": "all",
        "audience": {"registration_id": [message.to]},
        "notification": {
            "alert": content.text,
            "android": {"alert": content.text, "title": content.subject, "extras": extras},
            "ios": {"alert": {"title": content.subject, "body": content.text}, "sound": "default", "extras": extras},
        },
        "options": {"sendno": sendno(message.touch_key), "time_to_live": TIME_TO_LIVE_S,
                    "apns_production": production},
    }


# JPush's documented byte limits (error 1005, "message body too large"), counted in UTF-8 as JPush
# counts them (a Chinese character is 3 bytes): the "ios":{...} object at most 3,584 bytes (APNs
# takes 4,096 and JPush repacks it), Android's notification (with any message) at most 4,000.
IOS_MAX_BYTES = 3_584
ANDROID_MAX_BYTES = 4_000


def oversize(payload: dict[str, Any]) -> str | None:
    """Why JPush would refuse ``payload`` as too large (code 1005), or None when it fits."""
    notification = payload.get("notification") or {}
    ios = len(orjson.dumps({"ios": notification.get("ios", {})}))
    android = len(orjson.dumps({k: v for k, v in notification.items() if k != "ios"})) + (
        len(orjson.dumps(payload["message"])) if "message" in payload else 0)
    if ios > IOS_MAX_BYTES:
        return f"the iOS notification is {ios} bytes, JPush takes at most {IOS_MAX_BYTES}"
    if android > ANDROID_MAX_BYTES:
        return f"the Android notification is {android} bytes, JPush takes at most {ANDROID_MAX_BYTES}"
    return None


def basic_auth(app_key: str, master_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{app_key}:{master_secret}".encode()).decode("ascii")


class JPushAdapter:
    """``ChannelAdapter`` for app push through JPush, ``concurrency`` requests in flight."""

    channel = "push"

    def __init__(self, app_key: str, master_secret: str, *, api_base: str = DEFAULT_API_BASE,
                 report_base: str | None = None, concurrency: int = 48, timeout: float = 10.0,
                 production: bool = True) -> None:
        self.app_key = app_key
        self.concurrency = concurrency
        self.production = production
        headers = {"Authorization": basic_auth(app_key, master_secret),
                   "Content-Type": "application/json; charset=utf-8"}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.http = HttpxAiohttpClient(base_url=api_base.rstrip("/"), timeout=httpx.Timeout(timeout),
                                       limits=limits, headers=headers)
        self.report = HttpxAiohttpClient(base_url=(report_base or api_base).rstrip("/"),
                                         timeout=httpx.Timeout(timeout), headers=headers)
        # No cookie jar, and the push URL parsed once (httpx parses a URL per request otherwise).
        self.http._cookies = NoCookies()
        self._push_url = httpx.URL(api_base.rstrip("/") + "/v3/push")
        self._semaphore = asyncio.BoundedSemaphore(concurrency)

    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        return await run_bounded(messages, self.send_one, self.concurrency)

    async def send_one(self, message: OutboundMessage) -> SendResult:
        payload = push_payload(message, production=self.production)
        too_large = oversize(payload)
        if too_large is not None:
            # Refused here, whole: cutting the text would change what the template says, and JPush
            # would refuse it with 1005 anyway. The template's text must be shortened.
            log.info("jpush %s not sent: %s", message.content.template, too_large)
            return _failed(message, "permanent", "too_long", f"push too long: {too_large}")
        body = orjson.dumps(payload)
        async with self._semaphore:
            try:
                resp = await self.http.post(self._push_url, content=body)
            except (httpx.HTTPError, TimeoutError) as exc:
                return _failed(message, *unanswered(exc, "JPush"))
        reply = _json(resp.content)
        if resp.status_code == 200 and reply.get("msg_id") is not None:
            return SendResult(message.touch_key, ok=True, provider_message_id=str(reply["msg_id"]),
                              provider_status="accepted")
        raw_error = reply.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        code = error.get("code")
        verdict = classify_jpush(resp.status_code, int(code) if isinstance(code, int | str) and str(code).isdigit()
                                 else None)
        log.info("jpush %s refused: HTTP %s code %s (%s)", message.content.template, resp.status_code, code,
                 verdict.reason)
        error_code = f"jpush:{code}" if code is not None else f"http:{resp.status_code}"
        return _failed(message, verdict.error_class, error_code, f"{verdict.reason} ({error.get('message', '')})")

    async def delivery_status(self, msg_id: str, registration_ids: Sequence[str]) -> dict[str, int]:
        """Receipt status per device of one sent message (``/v3/status/message``); devices JPush
        does not answer for are left out. Raises ``httpx.HTTPError`` when the report API fails."""
        out: dict[str, int] = {}
        ids = list(registration_ids)
        for i in range(0, len(ids), 1000):
            body = orjson.dumps({"msg_id": int(msg_id), "registration_ids": ids[i : i + 1000]})
            resp = await self.report.post("/v3/status/message", content=body)
            resp.raise_for_status()
            for rid, state in _json(resp.content).items():
                if isinstance(state, dict) and isinstance(state.get("status"), int):
                    out[str(rid)] = int(state["status"])
        return out

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.report.aclose()


def _json(content: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(content)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _failed(message: OutboundMessage, klass: Any, code: str, reason: str) -> SendResult:
    return SendResult(message.touch_key, ok=False, error_class=klass, error_code=code, error_reason=reason)
