"""WeChat Official Account template messages through ``httpx``.

``httpx`` 0.28's own connection pool slows down as concurrency grows (NOTES.md),
so the client is ``httpx-aiohttp``'s ``HttpxAiohttpClient``: the httpx API on an
aiohttp transport.

WeChat answers HTTP 200 with an ``errcode`` for almost everything; 40001/42001
mean our access token is stale: it is refreshed (one fetch shared by all
concurrent sends, see ``wechat_token``) and the send retried once.

The touch key is sent as ``client_msg_id`` (WeChat's anti-duplicate id for
template sends; hashed when longer than 64 characters), which also lets the
stand-in log the key. WeChat has no lookup of template sends, so a send that WeChat may
have taken without our knowing (the reply lost, or an HTTP 5xx, which a gateway can send
after the backend took the message) is repeated at once with the same ``client_msg_id``
(deduplicated by WeChat within ``DEDUP_WINDOW``), and if no repeat is answered the result
is ``unknown``. errcode ``-1`` "system busy" is different: WeChat's own answer in an HTTP
200 JSON body that it did not send, so it is retryable like any other refusal.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import orjson
from httpx_aiohttp import HttpxAiohttpClient

from channels.base import ErrorClass, OutboundMessage, SendResult
from channels.batching import run_bounded
from channels.errors import (
    CONNECT_ERROR,
    WECHAT_ALREADY_ACCEPTED,
    WECHAT_TOKEN_INVALID,
    classify_http_status,
    classify_wechat,
)
from channels.http_client import NoCookies, unanswered
from channels.wechat_token import AccessTokenCache, SharedTokens, TokenError
from store.masking import rewrite_record

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com"
# "For the same openid + client_msg_id only one message is sent; valid for 10 minutes, not
# guaranteed after that" (WeChat template send API, client_msg_id).
DEDUP_WINDOW = timedelta(minutes=10)
_SECRET_QUERY = re.compile(r"((?:access_token|secret)=)[^&\s\"']+")


class _RedactSecrets(logging.Filter):
    """httpx logs every request URL at INFO; ours carry the access token or app secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        rewrite_record(record, _redact_secrets)
        return True


def _redact_secrets(message: str) -> str:
    return _SECRET_QUERY.sub(r"\1***", message)


def _install_redaction() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactSecrets) for f in logger.filters):
        logger.addFilter(_RedactSecrets())


def client_msg_id(touch_key: str) -> str:
    return touch_key if len(touch_key) <= 64 else hashlib.sha256(touch_key.encode()).hexdigest()[:64]


def template_payload(message: OutboundMessage) -> dict[str, Any]:
    content = message.content
    payload: dict[str, Any] = {
        "touser": message.to,
        "template_id": content.wechat_template_id,
        "data": {name: {"value": value} for name, value in content.wechat_data.items()},
        "client_msg_id": client_msg_id(message.touch_key),
    }
    if content.wechat_url:
        payload["url"] = content.wechat_url
    return payload


_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


class _Failure(Exception):
    def __init__(self, result: SendResult) -> None:
        self.result = result


class WeChatTemplateAdapter:
    """``ChannelAdapter`` for WeChat template messages, ``concurrency`` requests in flight."""

    channel = "wechat"
    # A re-send with the same touch key within this window is deduplicated by WeChat; after
    # a crash, ``engine.sending.reconcile`` re-sends an interrupted touch only inside it.
    dedup_window = DEDUP_WINDOW

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        api_base: str = DEFAULT_API_BASE,
        concurrency: int = 48,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        keyed_retries: int = 2,
        retry_pause: float = 0.2,
        shared_tokens: SharedTokens | None = None,
    ) -> None:
        _install_redaction()
        self.appid = appid
        self._secret = secret
        self.concurrency = concurrency
        self.timeout = timeout
        self.keyed_retries = keyed_retries
        self.retry_pause = retry_pause
        self.http = HttpxAiohttpClient(
            base_url=api_base.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        # httpx has no switch for "no cookies": the client's jar is replaced (the public setter
        # would copy it back into a plain one).
        self.http._cookies = NoCookies()
        # shared_tokens: the one token of the account, kept in the store for every process (WeChat
        # invalidates a token five minutes after the next fetch, and fetches are counted per day).
        self.tokens = AccessTokenCache(self._fetch_token, clock=clock, shared=shared_tokens)
        self._api_base = api_base.rstrip("/")
        self._send_url: tuple[str, httpx.URL] | None = None
        self._semaphore = asyncio.BoundedSemaphore(concurrency)

    async def _fetch_token(self) -> tuple[str, int]:
        try:
            resp = await self.http.get(
                "/cgi-bin/token",
                params={"grant_type": "client_credential", "appid": self.appid, "secret": self._secret},
            )
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenError(None, f"token endpoint unreachable: {type(exc).__name__}") from exc
        if resp.status_code != 200 or "access_token" not in body:
            raise TokenError(body.get("errcode", resp.status_code), str(body.get("errmsg", "")))
        return str(body["access_token"]), int(body.get("expires_in", 7200))

    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        return await run_bounded(messages, self.send_one, self.concurrency)

    async def send_one(self, message: OutboundMessage) -> SendResult:
        """One template send; an unconfirmed one (no reply, or a 5xx) is sent again at once with the
        same ``client_msg_id``.

        WeChat has no API to look a template send up afterwards, so the only safe way to
        settle "did it arrive?" is to repeat the request while WeChat still dedups it
        (``DEDUP_WINDOW``, counted from our first try, so the repeats surely fall inside).
        If no repeat settles it either (answered ok, or 45065 "already accepted"), the result
        is ``unknown``: dispatch fails the touch with that reason rather than risk a second
        message later (a dispatch retry may come after the window, or on a fallback channel).
        """
        body = orjson.dumps(template_payload(message))
        started = time.monotonic()  # real time: the dedup window is WeChat's, not our test clock's
        first_unanswered: SendResult | None = None
        tries = 0
        async with self._semaphore:
            while True:
                tries += 1
                result = await self._attempt(message, body)
                if result.ok:
                    return result
                if first_unanswered is None:
                    if result.error_class != "unknown":
                        return result
                    first_unanswered = result
                # After an unconfirmed try, any failure leaves delivery unknown: keep repeating
                # the keyed request while that is safe and worthwhile, then give up as unknown.
                elapsed = time.monotonic() - started
                if tries > self.keyed_retries or elapsed + self.timeout + 1.0 >= DEDUP_WINDOW.total_seconds():
                    break
                await asyncio.sleep(self.retry_pause * tries)
        reason = (f"{first_unanswered.error_reason}; delivery unknown after {tries} tries with the same "
                  "client_msg_id (WeChat offers no lookup of template sends)")
        log.info("wechat template %s: %s", message.content.template, reason)
        return SendResult(message.touch_key, ok=False, error_class="unknown",
                          error_code=first_unanswered.error_code, error_reason=reason)

    async def _attempt(self, message: OutboundMessage, body: bytes) -> SendResult:
        try:
            token = await self.tokens.get()
            reply = await self._post(message, token, body)
            if reply.get("errcode") in WECHAT_TOKEN_INVALID:
                token = await self.tokens.refresh(stale=token)
                reply = await self._post(message, token, body)
        except TokenError as exc:
            return SendResult(
                message.touch_key,
                ok=False,
                error_class="retryable",
                error_code=f"token:{exc.errcode}",
                error_reason=f"access token unavailable: {exc.errmsg}",
            )
        except _Failure as failure:
            return failure.result
        errcode = int(reply.get("errcode", 0))
        if errcode == 0 or errcode in WECHAT_ALREADY_ACCEPTED:
            msgid = reply.get("msgid")
            return SendResult(message.touch_key, ok=True, provider_message_id=str(msgid) if msgid is not None else None,
                              provider_status="ok" if errcode == 0 else "duplicate")
        verdict = classify_wechat(errcode)
        log.info("wechat template %s refused: %s %s", message.content.template, errcode, verdict.reason)
        return SendResult(
            message.touch_key,
            ok=False,
            error_class=verdict.error_class,
            error_code=str(errcode),
            error_reason=f"{verdict.reason} ({reply.get('errmsg', '')})",
        )

    def _url_for(self, token: str) -> httpx.URL:
        # httpx parses URLs character by character and the token is ~130 characters; parsing
        # once per token instead of once per send was the largest single saving per request.
        cached = self._send_url
        if cached is None or cached[0] != token:
            url = httpx.URL(f"{self._api_base}/cgi-bin/message/template/send", params={"access_token": token})
            cached = self._send_url = (token, url)
        return cached[1]

    async def _post(self, message: OutboundMessage, token: str, body: bytes) -> dict[str, Any]:
        try:
            resp = await self.http.post(self._url_for(token), content=body, headers=_JSON_HEADERS)
        except (httpx.HTTPError, TimeoutError) as exc:
            klass, code, reason = unanswered(exc, "WeChat")
            raise _Failure(SendResult(message.touch_key, ok=False, error_class=klass, error_code=code,
                                      error_reason=reason)) from exc
        if resp.status_code != 200:
            # A 5xx comes from WeChat's gateway, with no errcode: the backend may have sent the
            # message before it failed, so it is class unknown (repeated with the key above).
            klass = classify_http_status(resp.status_code)
            after = " after the request was sent" if klass == "unknown" else ""
            raise _Failure(
                SendResult(
                    message.touch_key,
                    ok=False,
                    error_class=klass,
                    error_code=f"http:{resp.status_code}",
                    error_reason=f"HTTP {resp.status_code} from WeChat{after}",
                )
            )
        try:
            reply: dict[str, Any] = orjson.loads(resp.content)
            if not isinstance(reply, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise self._failure(message, "bad_reply", "WeChat reply is not JSON") from exc
        return reply

    @staticmethod
    def _failure(message: OutboundMessage, code: str, reason: str) -> _Failure:
        # Only a failed connect proves WeChat never saw the request; after that it may have
        # taken it (a lost reply, a garbled 200), so delivery is unknown.
        klass: ErrorClass = "retryable" if code == CONNECT_ERROR else "unknown"
        result = SendResult(message.touch_key, ok=False, error_class=klass, error_code=code, error_reason=reason)
        return _Failure(result)

    async def aclose(self) -> None:
        await self.http.aclose()
