"""Building channel adapters from the environment.

A channel whose credentials are present gets its provider adapter; one without
them gets the outbox (a JSON-lines file per channel) when an outbox directory is
given, so the embedded demo runs with no provider at all, and otherwise is an
error naming the missing variables.

- sms: ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``, ``TWILIO_FROM`` or
  ``TWILIO_MESSAGING_SERVICE_SID``; optional ``TWILIO_API_BASE``.
- wechat: ``WECHAT_APPID``, ``WECHAT_SECRET``; optional ``WECHAT_API_BASE``. The access token is
  kept in the store (``JOURNEYS_DATABASE_URL``) and shared by every process.
- push: ``JPUSH_APP_KEY``, ``JPUSH_MASTER_SECRET``; optional ``JPUSH_API_BASE``, ``JPUSH_REPORT_BASE``,
  ``JPUSH_PRODUCTION`` (true: iOS production APNs).
- email: ``SMTP_HOST``, ``EMAIL_FROM``; optional ``SMTP_PORT`` (587), ``SMTP_USER``,
  ``SMTP_PASSWORD``, ``SMTP_STARTTLS`` (true), ``SMTP_SSL`` (false), ``SMTP_CA_FILE``,
  ``EMAIL_UNSUBSCRIBE_URL`` (may hold ``{key}``), ``EMAIL_UNSUBSCRIBE_MAILTO``.
- all: ``CHANNEL_CONCURRENCY`` (48 requests in flight per adapter), ``CHANNEL_TIMEOUT`` (10 s).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypedDict

from channels.base import ChannelAdapter
from channels.email_smtp import SmtpEmailAdapter, SmtpSettings
from channels.outbox import OutboxAdapter
from channels.push_jpush import DEFAULT_API_BASE as JPUSH_DEFAULT_BASE
from channels.push_jpush import JPushAdapter
from channels.sms_twilio import TwilioSmsAdapter
from channels.wechat import DEFAULT_API_BASE as WECHAT_DEFAULT_BASE
from channels.wechat import WeChatTemplateAdapter
from channels.wechat_token_store import StoredTokens

CHANNELS = ("sms", "wechat", "email", "push")


class ChannelNotConfigured(RuntimeError):
    pass


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _missing(env: Mapping[str, str], *names: str) -> list[str]:
    return [n for n in names if not env.get(n)]


def _require(channel: str, missing: list[str]) -> None:
    if missing:
        raise ChannelNotConfigured(f"{channel}: set {', '.join(missing)}")


def _credentials(env: Mapping[str, str], channel: str, *names: str) -> list[str]:
    """The values of the channel's required variables, in order; refused naming every one missing."""
    _require(channel, _missing(env, *names))
    return [env[n] for n in names]


class _HttpLimits(TypedDict):
    """The keyword arguments every HTTP adapter takes for its requests in flight and seconds per request."""

    concurrency: int
    timeout: float


def _http_limits(env: Mapping[str, str]) -> _HttpLimits:
    """``CHANNEL_CONCURRENCY`` and ``CHANNEL_TIMEOUT``, for the HTTP adapters."""
    return _HttpLimits(concurrency=int(env.get("CHANNEL_CONCURRENCY", "48")),
                       timeout=float(env.get("CHANNEL_TIMEOUT", "10")))


class _HttpOptions(_HttpLimits):
    """``_HttpLimits`` and the provider's API base, for the adapters that always have one."""

    api_base: str


def _http_options(env: Mapping[str, str], base_variable: str, default_base: str) -> _HttpOptions:
    """``_http_limits`` and the API base ``base_variable`` names (the provider's own without it)."""
    return _HttpOptions(api_base=env.get(base_variable) or default_base, **_http_limits(env))


def sms_from_env(env: Mapping[str, str]) -> TwilioSmsAdapter:
    missing = _missing(env, "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
    if not env.get("TWILIO_FROM") and not env.get("TWILIO_MESSAGING_SERVICE_SID"):
        missing.append("TWILIO_FROM")
    _require("sms", missing)
    return TwilioSmsAdapter(
        env["TWILIO_ACCOUNT_SID"],
        env["TWILIO_AUTH_TOKEN"],
        env.get("TWILIO_FROM") or None,
        messaging_service_sid=env.get("TWILIO_MESSAGING_SERVICE_SID") or None,
        api_base=env.get("TWILIO_API_BASE") or None,
        **_http_limits(env),
    )


def wechat_from_env(env: Mapping[str, str]) -> WeChatTemplateAdapter:
    appid, secret = _credentials(env, "wechat", "WECHAT_APPID", "WECHAT_SECRET")
    # Every process takes the account's one access token from the store (channels.wechat_token_store).
    return WeChatTemplateAdapter(appid, secret, shared_tokens=StoredTokens(appid),
                                 **_http_options(env, "WECHAT_API_BASE", WECHAT_DEFAULT_BASE))


def email_from_env(env: Mapping[str, str]) -> SmtpEmailAdapter:
    host, sender = _credentials(env, "email", "SMTP_HOST", "EMAIL_FROM")
    implicit_tls = _flag(env.get("SMTP_SSL"), False)
    ca_file = env.get("SMTP_CA_FILE")
    settings = SmtpSettings(
        host=host,
        port=int(env.get("SMTP_PORT") or (465 if implicit_tls else 587)),
        username=env.get("SMTP_USER") or None,
        password=env.get("SMTP_PASSWORD") or None,
        starttls=_flag(env.get("SMTP_STARTTLS"), True),
        implicit_tls=implicit_tls,
        timeout=float(env.get("CHANNEL_TIMEOUT", "30")),
        tls_context=ssl.create_default_context(cafile=ca_file) if ca_file else None,
    )
    return SmtpEmailAdapter(
        settings,
        sender,
        unsubscribe_url=env.get("EMAIL_UNSUBSCRIBE_URL") or None,
        unsubscribe_mailto=env.get("EMAIL_UNSUBSCRIBE_MAILTO") or None,
    )


def push_from_env(env: Mapping[str, str]) -> JPushAdapter:
    app_key, master_secret = _credentials(env, "push", "JPUSH_APP_KEY", "JPUSH_MASTER_SECRET")
    return JPushAdapter(
        app_key,
        master_secret,
        report_base=env.get("JPUSH_REPORT_BASE") or None,
        production=_flag(env.get("JPUSH_PRODUCTION"), True),
        **_http_options(env, "JPUSH_API_BASE", JPUSH_DEFAULT_BASE),
    )


_BUILDERS: dict[str, Callable[[Mapping[str, str]], ChannelAdapter]] = {
    "sms": sms_from_env,
    "wechat": wechat_from_env,
    "email": email_from_env,
    "push": push_from_env,
}


def build_adapter(
    channel: str, env: Mapping[str, str] | None = None, *, outbox_dir: str | Path | None = None
) -> ChannelAdapter:
    """The provider adapter for ``channel``, or the outbox when unconfigured and ``outbox_dir`` is given."""
    if channel not in _BUILDERS:
        raise ValueError(f"unknown channel {channel!r}")
    env = os.environ if env is None else env
    try:
        adapter: ChannelAdapter = _BUILDERS[channel](env)
        return adapter
    except ChannelNotConfigured:
        if outbox_dir is None:
            raise
        return OutboxAdapter(Path(outbox_dir) / f"{channel}.jsonl", channel)


def build_adapters(
    env: Mapping[str, str] | None = None,
    *,
    outbox_dir: str | Path | None = None,
    channels: Iterable[str] = CHANNELS,
) -> dict[str, ChannelAdapter]:
    return {channel: build_adapter(channel, env, outbox_dir=outbox_dir) for channel in channels}
