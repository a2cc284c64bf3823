"""The one interface every channel adapter speaks, and the messages that cross it.

Dispatch renders a touch into a ``RenderedMessage`` (``engine.language.rendering``), wraps
it with its address into an ``OutboundMessage`` and hands a batch to the channel's
adapter; the adapter answers one ``SendResult`` per message, classifying every
failure as retryable, permanent or unknown with the provider's reason.

``unknown`` is for a request that may have reached the provider without a definite
answer (a timeout or a connection lost after the request was written, or an HTTP 5xx,
which can come after the provider took the message; ``channels.errors``): retrying it
could send the message twice, so dispatch hands such a touch to ``engine.sending.reconcile``
instead of retrying it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

ErrorClass = Literal["retryable", "permanent", "unknown"]


@dataclass(frozen=True)
class RenderedMessage:
    channel: str  # sms | wechat | email | push | webhook
    template: str
    locale: str
    # sms: text; email: subject/text/html; wechat: template_id, url, data (field -> value);
    # push: subject (the notification title) and text; webhook: text (the JSON body)
    text: str = ""
    subject: str = ""
    html: str = ""
    wechat_template_id: str = ""
    wechat_url: str = ""
    wechat_data: dict[str, str] = field(default_factory=dict)
    segments: int = 0  # SMS only


@dataclass(frozen=True)
class OutboundMessage:
    touch_id: int
    touch_key: str  # idempotency key; email Message-ID and provider-side dedup derive from it
    to: str  # E.164 phone, WeChat openid, e-mail address, JPush registration id or webhook target name
    content: RenderedMessage
    category: str = "service"  # service | marketing (email List-Unsubscribe, SMS footer)
    status_callback_url: str | None = None
    # Marketing e-mail: the customer's signed opt-out link (channels.optout), which the webhooks
    # answer, also to an RFC 8058 one-click POST; None when no key signs it.
    unsubscribe_url: str | None = None


@dataclass(frozen=True)
class SendResult:
    touch_key: str
    ok: bool
    provider_message_id: str | None = None
    provider_status: str | None = None  # e.g. Twilio 'queued'
    error_class: ErrorClass | None = None
    error_code: str | None = None
    error_reason: str | None = None


class ChannelAdapter(Protocol):
    channel: str

    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        """Send concurrently; one result per message, in the same order; never raises for a provider error."""
        ...

    async def aclose(self) -> None: ...
