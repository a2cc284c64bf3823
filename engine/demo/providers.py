"""The providers the demo sends through: Twilio, WeChat, SMTP and JPush stand-ins started in-process,
and the CRM that the journeys' webhook steps call (a receiver that checks signatures).

Their signed status and inbound callbacks land on a ``WebhookSink`` and are replayed into the
real receipt handlers (``engine.loop.receipts``) at the simulated time, because Twilio's
callbacks carry no timestamp of their own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections import Counter
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class _LoopThread:
    """An event loop in a daemon thread: the webhook sink must answer while the main thread works."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def _gather(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    return list(await asyncio.gather(*coros))


class Providers:
    """The stand-ins and the sink their callbacks go to; ``replay`` feeds those callbacks to our handlers."""

    SMS_SENDER = "106900000000"  # the number customers reply to (a service short code, no person's number)

    def __init__(self, db_url: str, out_dir: Path) -> None:
        from standins.jpush_api import JPushStandin
        from standins.sink import WebhookSink
        from standins.smtp_server import SmtpStandin
        from standins.twilio_api import TwilioStandin
        from standins.webhook_receiver import WebhookReceiverStandin
        from standins.wechat_api import WeChatStandin

        self.db_url = db_url
        self._sink_loop = _LoopThread("demo-webhook-sink")
        self.sink = WebhookSink()
        self._sink_loop.run(self.sink.start())
        base = self.sink.base_url
        # Secrets made up per run: the stand-ins and our handlers share them through this process only.
        self.twilio = TwilioStandin(
            account_sid="AC" + secrets.token_hex(16), auth_token=secrets.token_hex(16),
            inbound_url=f"{base}/hooks/twilio/inbound",
        )
        self.wechat = WeChatStandin(
            appid="wx" + secrets.token_hex(8), secret=secrets.token_hex(16),
            callback_url=f"{base}/hooks/wechat", callback_token=secrets.token_hex(12),
        )
        # STARTTLS with AUTH, as a real relay wants; its certificate is made up at start-up.
        self.smtp = SmtpStandin(username="journeys-demo", password=secrets.token_hex(12), starttls=True)
        self.jpush = JPushStandin(app_key=secrets.token_hex(12), master_secret=secrets.token_hex(12))
        self.crm = WebhookReceiverStandin(secrets.token_hex(16))
        self._replayed = 0
        self.twilio.start()
        self.wechat.start()
        self.smtp.start()
        self.jpush.start()
        self.crm.start()
        # The adapter trusts the stand-in's self-signed certificate through SMTP_CA_FILE (a public certificate).
        self.smtp_ca = out_dir / "smtp-standin-ca.pem"
        self.smtp_ca.write_bytes(self.smtp.cert_pem or b"")

    def env(self) -> dict[str, str]:
        """The channel configuration (``channels.registry``) pointing at the stand-ins."""
        return {
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
            "TWILIO_API_BASE": self.twilio.base_url,
            "WECHAT_APPID": self.wechat.appid,
            "WECHAT_SECRET": self.wechat.secret,
            "WECHAT_API_BASE": self.wechat.base_url,
            "WECHAT_TOKEN": self.wechat.callback_token,
            "SMTP_HOST": self.smtp.host,
            "SMTP_PORT": str(self.smtp.port),
            "SMTP_USER": self.smtp.username or "",
            "SMTP_PASSWORD": self.smtp.password or "",
            "SMTP_STARTTLS": "true",
            "SMTP_CA_FILE": str(self.smtp_ca.resolve()),
            "EMAIL_FROM": "service@journeys-demo.invalid",
            "JPUSH_APP_KEY": self.jpush.app_key,
            "JPUSH_MASTER_SECRET": self.jpush.master_secret,
            "JPUSH_API_BASE": self.jpush.base_url,
            # The CRM target of config/webhooks.yaml: its URL and shared secret.
            "CRM_WEBHOOK_URL": self.crm.url,
            "CRM_WEBHOOK_SECRET": self.crm.secret.decode(),
            # Where status callbacks are addressed (dispatch adds /hooks/twilio/status?touch_key=...).
            "JOURNEYS_PUBLIC_URL": self.sink.base_url,
        }

    def set_failures(self, phones: dict[str, tuple[str, int | None]], send_errors: dict[str, int],
                     unsubscribed: set[str], blocked: set[str]) -> None:
        """Some customers cannot be reached on a channel, as in any real book (fallback shows)."""
        self.twilio.delivery_outcomes.update(phones)
        self.twilio.recipient_errors.update(send_errors)
        self.wechat.unsubscribed.update(unsubscribed)
        self.wechat.delivery_status.update({openid: "failed:user block" for openid in blocked})

    def inject_replies(self, sms: list[tuple[str, str]], wechat: list[tuple[str, str]]) -> None:
        """Customers' texts, sent the way the providers deliver them (signed, to the sink)."""
        if sms:
            self.twilio.run(_gather([self.twilio.inject_inbound(phone, self.SMS_SENDER, body) for phone, body in sms]),
                            timeout=120)
        if wechat:
            self.wechat.run(_gather([self.wechat.inject_text(openid, body) for openid, body in wechat]), timeout=120)

    def replay(self, at: datetime) -> Counter[str]:
        """Wait for the stand-ins' queued callbacks, then hand every new one to our handlers at ``at``."""
        from engine.loop.receipts import handle_twilio_inbound, handle_twilio_status, handle_wechat

        self.twilio.run(self.twilio.drain_callbacks(), timeout=300)
        self.wechat.run(self.wechat.drain_callbacks(), timeout=300)
        received = self.sink.received[self._replayed:]
        self._replayed += len(received)
        results: Counter[str] = Counter()
        for r in received:
            if r.path == "/hooks/twilio/status":
                status, body = handle_twilio_status(r.url, r.headers, r.body, db_url=self.db_url,
                                                    auth_token=self.twilio.auth_token, at=at)
            elif r.path == "/hooks/twilio/inbound":
                status, body = handle_twilio_inbound(r.url, r.headers, r.body, db_url=self.db_url,
                                                     auth_token=self.twilio.auth_token, at=at)
                body = "inbound"
            elif r.path == "/hooks/wechat":
                status, body = handle_wechat("POST", r.url, r.body, db_url=self.db_url,
                                             token=self.wechat.callback_token, at=at)
                body = "wechat"
            else:
                status, body = 404, "unknown"
            results[f"{r.path.rsplit('/', 1)[-1]}:{status}:{body}"] += 1
        results.update({f"push:{k}": v for k, v in self._push_receipts(at).items()})
        return results

    def _push_receipts(self, at: datetime) -> Counter[str]:
        """JPush calls nobody back: its receipts are looked up (``engine.loop.push_receipts``)."""
        from channels.push_jpush import JPushAdapter
        from engine.loop.push_receipts import poll_push_receipts
        from store.db import get_engine

        async def poll() -> Counter[str]:
            adapter = JPushAdapter(self.jpush.app_key, self.jpush.master_secret, api_base=self.jpush.base_url)
            try:
                return await poll_push_receipts(get_engine(self.db_url), adapter, now=at)
            finally:
                await adapter.aclose()

        return self._sink_loop.run(poll(), timeout=300)

    def duplicates(self) -> dict[str, dict[str, int]]:
        """Idempotency keys a provider accepted more than once (should be none)."""
        return {"sms": self.twilio.log.duplicates(), "wechat": self.wechat.log.duplicates(),
                "email": self.smtp.log.duplicates(), "push": self.jpush.log.duplicates(),
                "webhook": self.crm.log.duplicates()}

    def accepted(self) -> dict[str, int]:
        return {"sms": len(self.twilio.log), "wechat": len(self.wechat.log), "email": len(self.smtp.log),
                "push": len(self.jpush.log), "webhook": len(self.crm.log)}

    def close(self) -> None:
        for stop in (self.twilio.stop, self.wechat.stop, self.smtp.stop, self.jpush.stop, self.crm.stop):
            try:
                stop()
            except Exception:  # shutting down: one stand-in failing to stop must not hide the others
                log.warning("stopping a stand-in failed", exc_info=True)
        try:
            self._sink_loop.run(self.sink.stop(), timeout=10)
        finally:
            self._sink_loop.stop()
