"""The channel adapters and status-callback URLs a dispatcher gets from the environment
(``engine.sending.dispatch.make_dispatcher``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from channels.base import ChannelAdapter
from engine.sending.claiming import ClaimedTouch
from store.models import WEBHOOK_CHANNEL

# The dispatcher's own log: these lines say what it dispatches.
log = logging.getLogger("engine.sending.dispatch")

# WeChat pushes its TEMPLATESENDJOBFINISH events to the one URL set on the account and
# SMTP has no per-message callback: only Twilio takes a URL per message.
CALLBACK_PATHS = {"sms": "/hooks/twilio/status"}


def build_adapters(outbox_dir: str | None = None) -> dict[str, ChannelAdapter]:
    """The adapters of every channel configured in the environment (``channels.registry``).

    A channel without credentials is skipped, so its touches stay planned for a worker
    that has them; with ``outbox_dir`` (or ``JOURNEYS_OUTBOX_DIR``) it writes to the
    outbox file instead.
    """
    import os

    from channels.registry import CHANNELS, ChannelNotConfigured, build_adapter

    outbox = outbox_dir or os.environ.get("JOURNEYS_OUTBOX_DIR") or None
    adapters: dict[str, ChannelAdapter] = {}
    for channel in CHANNELS:
        try:
            adapters[channel] = build_adapter(channel, outbox_dir=outbox)
        except ChannelNotConfigured as exc:
            log.info("channel not configured, not dispatching it here: %s", exc)
    webhook = webhook_adapter(outbox)
    if webhook is not None:
        adapters[WEBHOOK_CHANNEL] = webhook
    return adapters


def webhook_adapter(outbox_dir: str | None = None) -> ChannelAdapter | None:
    """The webhook targets of config/webhooks.yaml whose URL and secret are in the environment; with
    none, the outbox when ``outbox_dir`` is given (the embedded demo), else None."""
    from pathlib import Path

    from channels.outbox import OutboxAdapter
    from channels.webhook import WebhookAdapter, endpoints_from_env
    from engine.language.webhook_config import load_webhooks

    endpoints = endpoints_from_env(load_webhooks())
    if endpoints:
        return WebhookAdapter(endpoints)
    return OutboxAdapter(Path(outbox_dir) / f"{WEBHOOK_CHANNEL}.jsonl", WEBHOOK_CHANNEL) if outbox_dir else None


def callback_url_from_env() -> Callable[[str, ClaimedTouch], str | None] | None:
    """Status-callback URLs under ``JOURNEYS_PUBLIC_URL`` (where the receipts endpoints are reachable)."""
    import os

    base = os.environ.get("JOURNEYS_PUBLIC_URL", "").rstrip("/")
    if not base:
        return None

    def url(channel: str, touch: ClaimedTouch) -> str | None:
        path = CALLBACK_PATHS.get(channel)
        return f"{base}{path}" if path else None

    return url
