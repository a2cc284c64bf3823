"""Outbound calls to other systems (a journey's ``webhook`` step): signed JSON POSTs, retried safely.

Targets are declared in ``config/webhooks.yaml`` by name; the URL and the HMAC secret of each come
from environment variables named there, so no address or secret is in the repository::

    targets:
      crm:
        url_env: CRM_WEBHOOK_URL
        secret_env: CRM_WEBHOOK_SECRET

Every request carries:

- ``X-Journeys-Signature: t=<unix seconds>,v1=<hex>``: HMAC-SHA256 with the target's secret over
  ``"<t>.<body>"``, so the receiver checks both the body and its freshness (within
  ``SIGNATURE_TOLERANCE_S``) and a captured request cannot be replayed later;
- ``Idempotency-Key``: the touch key, the same on every retry, so a receiver that has the call
  already answers it again without acting twice (a target keeps keys ``IDEMPOTENCY_RETENTION``).

Because of that key a lost reply or a 5xx is safe to retry: those are ``retryable`` here (dispatch
backs off with ``engine.sending.retry``), unlike a message to a person. A 4xx other than 408/429
is ``permanent``. Dispatch records the outcome as the event ``webhook.<target>.succeeded`` or
``webhook.<target>.failed`` for the steps after it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import httpx
from httpx_aiohttp import HttpxAiohttpClient

from channels.base import ErrorClass, OutboundMessage, SendResult
from channels.batching import run_bounded
from channels.http_client import NoCookies
from channels.webhook_targets import WebhooksConfig
from store.models import WEBHOOK_CHANNEL

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Journeys-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_TOLERANCE_S = 300
IDEMPOTENCY_RETENTION = timedelta(hours=24)
@dataclass(frozen=True)
class Endpoint:
    url: str
    secret: bytes


def endpoints_from_env(config: WebhooksConfig, env: Mapping[str, str] | None = None) -> dict[str, Endpoint]:
    """The targets whose URL and secret are both set in the environment."""
    env = os.environ if env is None else env
    out: dict[str, Endpoint] = {}
    for name, target in config.targets.items():
        url, secret = env.get(target.url_env), env.get(target.secret_env)
        if url and secret:
            out[name] = Endpoint(url, secret.encode())
        else:
            log.info("webhook target %s not configured here (set %s and %s)", name, target.url_env,
                     target.secret_env)
    return out


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookAdapter:
    """``ChannelAdapter`` for the ``webhook`` channel: ``OutboundMessage.to`` names the target and
    ``content.text`` is the JSON body rendered from the step's template."""

    channel = WEBHOOK_CHANNEL
    # The receiver answers a repeated Idempotency-Key without acting again; a day is the retention
    # we ask of a target. Within it a call interrupted by a crash is simply sent again
    # (engine.sending.reconcile) instead of being failed as "delivery unknown".
    dedup_window = IDEMPOTENCY_RETENTION

    def __init__(self, endpoints: Mapping[str, Endpoint], *, concurrency: int = 16, timeout: float = 10.0) -> None:
        self.endpoints = dict(endpoints)
        self.concurrency = concurrency
        self.http = HttpxAiohttpClient(timeout=httpx.Timeout(timeout),
                                       limits=httpx.Limits(max_connections=concurrency))
        self.http._cookies = NoCookies()  # a receiver's cookies mean nothing to the next call

    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        return await run_bounded(messages, self.send_one, self.concurrency)

    async def send_one(self, message: OutboundMessage) -> SendResult:
        endpoint = self.endpoints.get(message.to)
        if endpoint is None:
            return SendResult(message.touch_key, False, error_class="retryable", error_code="not_configured",
                              error_reason=f"webhook target {message.to!r} has no URL and secret here")
        body = message.content.text.encode()
        headers = {"Content-Type": "application/json; charset=utf-8", IDEMPOTENCY_HEADER: message.touch_key,
                   SIGNATURE_HEADER: sign(endpoint.secret, body, int(time.time()))}
        try:
            resp = await self.http.post(endpoint.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            # Safe to repeat whatever happened: the receiver deduplicates on the idempotency key.
            return SendResult(message.touch_key, False, error_class="retryable", error_code="connection",
                              error_reason=f"{message.to}: {type(exc).__name__}")
        if 200 <= resp.status_code < 300:
            return SendResult(message.touch_key, True, provider_message_id=f"{message.to}:{message.touch_key}"[:128],
                              provider_status=str(resp.status_code))
        again = resp.status_code >= 500 or resp.status_code in (408, 425, 429)
        klass: ErrorClass = "retryable" if again else "permanent"
        return SendResult(message.touch_key, False, error_class=klass, error_code=f"http:{resp.status_code}",
                          error_reason=f"{message.to} answered HTTP {resp.status_code}")

    async def aclose(self) -> None:
        await self.http.aclose()
