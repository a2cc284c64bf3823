"""A batch that outlives its claim's lease is not sent twice.

Worker A claims four SMS touches and sends them one chunk at a time (a low rate limit). Its first
send takes six minutes (a slow provider, a rate shared by several workers), longer than the five-minute
lease after which ``engine.sending.reconcile`` takes a ``sending`` touch for a dead worker's. Worker B
dispatches meanwhile: it asks Twilio about A's four touches, finds the first, and sends the three Twilio
does not have yet. When A goes on, it must not send those three again. Real parts: two dispatchers on
one SQLite file, the Twilio SDK and stand-in; the six minutes pass on the dispatchers' clock, B runs
inside A's first send.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from channels.base import OutboundMessage, SendResult
from channels.sms_twilio import TwilioSmsAdapter
from engine.sending.claim_lease import renew
from engine.sending.claiming import claim_due
from engine.sending.dispatch import Dispatcher
from standins.twilio_api import TwilioStandin
from store.clock import utcnow
from store.db import make_engine
from tests.dispatch_support import PlainRenderer, daytime_zone, dispatch_until_idle, make_customers, make_touches

FROM = "+15005550006"
CALLBACK = "http://127.0.0.1:9/hooks/twilio/status"  # carries the touch key; nothing listens


class SlowFirstSend:
    """Twilio's adapter, whose first chunk takes ``then`` (the clock moved on, another worker's run) after it
    reached Twilio. Everything else is the real adapter's."""

    def __init__(self, adapter: TwilioSmsAdapter, then: Any) -> None:
        self.adapter, self.then, self.channel, self.first = adapter, then, "sms", True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.adapter, name)

    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        results = await self.adapter.send_batch(messages)
        if self.first:
            self.first = False
            # The loop stands still meanwhile, as a worker stuck in one slow request does.
            other = threading.Thread(target=self.then)
            other.start()
            other.join()
        return results


def test_a_batch_past_its_lease_sends_only_what_is_still_its_own(db_url: str) -> None:
    engine = make_engine(db_url)
    start = utcnow()
    make_touches(engine, make_customers(engine, 4, timezone=daytime_zone(start)), channel="sms", due=start)
    clock = [start]
    with TwilioStandin(callbacks=False) as standin:
        assert isinstance(standin, TwilioStandin)

        def adapter() -> TwilioSmsAdapter:
            return TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url,
                                    timeout=5)

        def worker_b() -> None:
            clock[0] = start + timedelta(minutes=6)
            b = Dispatcher(engine, {"sms": adapter()}, PlainRenderer(), worker_id="B",
                           callback_url=lambda channel, touch: CALLBACK, clock=lambda: clock[0])
            report["B"] = dispatch_until_idle(b, now=clock[0])

        report: dict[str, Any] = {}
        a = Dispatcher(engine, {"sms": SlowFirstSend(adapter(), worker_b)}, PlainRenderer(), worker_id="A",
                       rate_limits={"sms": 10}, callback_url=lambda channel, touch: CALLBACK,
                       clock=lambda: clock[0])
        report["A"] = asyncio.run(_run_batch(a, start))

    assert report["B"].reconciled["found_sent"] == 1 and report["B"].sent == 3  # B did take three over
    assert standin.log.duplicates() == {}
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, status, claimed_by, provider_message_id FROM touch")).all()
    assert {r.status for r in rows} == {"sent"}
    assert set(standin.log.keys()) == {r.key for r in rows}
    assert len({r.provider_message_id for r in rows}) == 4
    engine.dispose()


async def _run_batch(dispatcher: Dispatcher, now: datetime) -> Any:
    try:
        return await dispatcher.run_batch(now)
    finally:
        await dispatcher.aclose()


class RenewingWhileAsked:
    """Twilio's client, as worker B's reconciliation asks it: while the question is out, worker A (alive,
    only slow) renews its claim and goes on. Everything else is the real client's."""

    def __init__(self, client: Any, renew_now: Any) -> None:
        self.client, self.renew_now = client, renew_now
        self.messages = self

    async def list_async(self, **filters: Any) -> Any:
        self.renew_now()
        return await self.client.messages.list_async(**filters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_a_claim_renewed_while_reconciliation_asks_is_left_to_its_worker(migrated_any_db: str) -> None:
    """B reads A's claim as stale and asks Twilio, which has nothing yet; A renews its claim meanwhile and
    is about to send. B must leave the touch to A rather than plan it again (and send it a second time)."""
    engine = make_engine(migrated_any_db)
    start = utcnow()
    make_touches(engine, make_customers(engine, 1, timezone=daytime_zone(start)), channel="sms", due=start)
    [claimed] = claim_due(engine, "A", 10, start)
    later = start + timedelta(minutes=6)
    with TwilioStandin(callbacks=False) as standin:
        assert isinstance(standin, TwilioStandin)
        adapter = TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url,
                                   timeout=5)
        adapter.client = RenewingWhileAsked(  # type: ignore[assignment] # Twilio's client, wrapped
            adapter.client, lambda: renew(engine, "A", [claimed.id], later))
        b = Dispatcher(engine, {"sms": adapter}, PlainRenderer(), worker_id="B",
                       callback_url=lambda channel, touch: CALLBACK, clock=lambda: later)
        counts = dispatch_until_idle(b, now=later)
    assert counts.sent == 0 and standin.log.keys() == {}
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, claimed_by FROM touch")).one()
    assert tuple(row) == ("sending", "A")  # A's to send and record
    engine.dispose()
