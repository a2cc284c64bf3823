"""WeChat Official Account template messages through ``httpx``.

``httpx`` 0.28's own connection pool slows down as concurrency grows (NOTES.md),
so the client is ``httpx-aiohttp``'s ``HttpxAiohttpClient``: the httpx API on an
aiohttp transport.

WeChat answers HTTP 200 with an ``errcode`` for almost everything; 40001/42001
mean our access token is stale: it is refreshed (one fetch shared by all
concurrent sends, see ``wechat_token``) and the send retried once.

The touch key is sent as ``client_msg_id`` (WeChat's anti-duplicate id for
template sends; hashed when longer than 64 characters), which also lets the
stand-in log the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import HttpxAiohttpClient

from channels.base import OutboundMessage, SendResult
from channels.batching import run_bounded
from channels.errors import CONNECT_ERROR, TIMEOUT, WECHAT_TOKEN_INVALID, classify_http_status, classify_wechat
from channels.wechat_token import AccessTokenCache, TokenError

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com"
CONNECTION_LOST = "connection_lost"
_SECRET_QUERY = re.compile(r"((?:access_token|secret)=)[^&\s\"']+")


class _RedactSecrets(logging.Filter):
    """httpx logs every request URL at INFO; ours carry the access token or app secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is still logged, just not rewritten
            return True
        redacted = _SECRET_QUERY.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


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


class _Failure(Exception):
    def __init__(self, result: SendResult) -> None:
        self.result = result


class WeChatTemplateAdapter:
    """``ChannelAdapter`` for WeChat template messages, ``concurrency`` requests in flight."""

    channel = "wechat"

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        api_base: str = DEFAULT_API_BASE,
        concurrency: int = 48,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _install_redaction()
        self.appid = appid
        self._secret = secret
        self.concurrency = concurrency
        self.http = HttpxAiohttpClient(
            base_url=api_base.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self.tokens = AccessTokenCache(self._fetch_token, clock=clock)
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
        body = json.dumps(template_payload(message), ensure_ascii=False).encode()
        async with self._semaphore:
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
        if errcode == 0:
            msgid = str(reply.get("msgid"))
            return SendResult(message.touch_key, ok=True, provider_message_id=msgid, provider_status="ok")
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
            resp = await self.http.post(
                self._url_for(token),
                content=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
        except (httpx.TimeoutException, TimeoutError) as exc:
            cause = exc.__cause__
            # httpx-aiohttp maps every aiohttp connection error to ConnectTimeout; the
            # original exception tells "never connected" from "sent, reply lost".
            if isinstance(cause, aiohttp.ClientConnectorError):
                raise self._failure(message, CONNECT_ERROR, "cannot connect to WeChat") from exc
            if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, aiohttp.ServerTimeoutError):
                raise self._failure(message, CONNECTION_LOST, f"connection lost: {type(cause).__name__}") from exc
            raise self._failure(message, TIMEOUT, "no reply from WeChat within the timeout") from exc
        except httpx.ConnectError as exc:
            raise self._failure(message, CONNECT_ERROR, "cannot connect to WeChat") from exc
        except httpx.HTTPError as exc:
            raise self._failure(message, CONNECTION_LOST, f"connection lost: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise _Failure(
                SendResult(
                    message.touch_key,
                    ok=False,
                    error_class=classify_http_status(resp.status_code),
                    error_code=f"http:{resp.status_code}",
                    error_reason=f"HTTP {resp.status_code} from WeChat",
                )
            )
        try:
            reply: dict[str, Any] = resp.json()
        except ValueError as exc:
            raise self._failure(message, "bad_reply", "WeChat reply is not JSON") from exc
        return reply

    @staticmethod
    def _failure(message: OutboundMessage, code: str, reason: str) -> _Failure:
        result = SendResult(message.touch_key, ok=False, error_class="retryable", error_code=code, error_reason=reason)
        return _Failure(result)

    async def aclose(self) -> None:
        await self.http.aclose()
