"""A dispatcher killed mid-send to a customer who had just replied TD: the restart settles the touch by
what it sent, not by the opt-out's confirmation.

Twilio sends the confirmation our inbound webhook answers in TwiML (``<Message>``) from our number to the
customer, so it is in the Messages list that reconciliation reads, under a SID no touch recorded. The
touch here is a service SMS (a TD to a marketing message leaves those coming), claimed by a worker that
died, before or after Twilio accepted it: the state a SIGKILL leaves (``test_crash_recovery`` kills a
real ``journeys dispatch``). Real parts: the Twilio stand-in and SDK, our webhook under uvicorn, the
dispatcher and reconciliation on a SQLite file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import Engine

from channels.base import OutboundMessage, RenderedMessage, SendResult
from channels.sms_twilio import TwilioSmsAdapter
from engine.loop.receipts import create_hooks_router
from engine.sending.claiming import claim_due
from engine.sending.dispatch import Dispatcher
from standins.twilio_api import TwilioStandin
from store.db import make_engine
from tests.dispatch_support import PlainRenderer, daytime_zone, dispatch_until_idle, make_customers, make_touches
from tests.standin_support import serving
from tests.uvicorn_support import uvicorn_thread

FROM = "+15005550006"
CALLBACK = "http://127.0.0.1:9/hooks/twilio/status"  # carries the touch key; nothing listens


@pytest.fixture
def standin() -> Iterator[TwilioStandin]:
    yield from serving(TwilioStandin(callbacks=False))


@pytest.fixture
def hooks(db_url: str, standin: TwilioStandin, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.delenv("JOURNEYS_PUBLIC_URL", raising=False)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", standin.auth_token)
    app = FastAPI()
    app.include_router(create_hooks_router(db_url))
    with uvicorn_thread(app, start_within=10) as port:
        yield f"http://127.0.0.1:{port}"


def _adapter(standin: TwilioStandin) -> TwilioSmsAdapter:
    return TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url, timeout=5)


def _dispatcher(engine: Engine, standin: TwilioStandin, worker: str) -> Dispatcher:
    return Dispatcher(engine, {"sms": _adapter(standin)}, PlainRenderer(), worker_id=worker,
                      callback_url=lambda channel, touch: CALLBACK)


@pytest.mark.parametrize("accepted", [False, True], ids=["killed before Twilio took it", "killed after"])
def test_an_opt_out_confirmation_is_not_taken_for_the_interrupted_send(
        db_url: str, standin: TwilioStandin, hooks: str, accepted: bool) -> None:
    engine = make_engine(db_url)
    [customer] = make_customers(engine, 1, timezone=daytime_zone())
    with engine.begin() as conn:
        phone = conn.execute(text("SELECT phone FROM customer")).scalar_one()
    make_touches(engine, [customer], journey="weekly-push")
    with engine.begin() as conn:
        conn.execute(text("UPDATE touch SET category = 'marketing'"))
    dispatch_until_idle(_dispatcher(engine, standin, "w0"))

    # The customer answers the push with TD: marketing SMS withdrawn, and Twilio sends our confirmation.
    assert standin.run(standin.inject_inbound(phone, FROM, "TD", f"{hooks}/hooks/twilio/inbound")) == 200
    with engine.connect() as conn:
        consent = conn.execute(text("SELECT consent_sms, consent_sms_marketing FROM customer")).one()
    assert tuple(consent) == (True, False)
    replies = [m for m in asyncio.run(_listed(standin, phone)) if m.direction == "outbound-reply"]
    assert len(replies) == 1

    make_touches(engine, [customer], journey="renewal")  # a service SMS: the TD leaves it coming
    [claimed] = claim_due(engine, "crash-w1", 10)
    if accepted:
        content = RenderedMessage(channel="sms", template="t", locale="zh-CN", text="hello s1")
        sent = asyncio.run(_send(standin, OutboundMessage(touch_id=claimed.id, touch_key=claimed.key, to=phone,
                                                          content=content, status_callback_url=CALLBACK)))
        assert sent.ok
    # ...and the worker dies there. Its successor, under the same id, settles the touch first.
    dispatch_until_idle(_dispatcher(engine, standin, "crash-w1"))

    with engine.connect() as conn:
        status, sid, error = conn.execute(
            text("SELECT status, provider_message_id, error_reason FROM touch WHERE key = :k"), {"k": claimed.key}
        ).one()
    assert (status, error) == ("sent", None)
    assert standin.log.keys()[claimed.key] == 1  # Twilio took it once: not lost, not twice
    assert sid not in {m.sid for m in replies}
    assert standin.log.duplicates() == {}
    engine.dispose()


async def _listed(standin: TwilioStandin, phone: str) -> list[Any]:
    adapter = _adapter(standin)
    try:
        return list(await adapter.client.messages.list_async(to=phone))
    finally:
        await adapter.aclose()


async def _send(standin: TwilioStandin, message: OutboundMessage) -> SendResult:
    adapter = _adapter(standin)
    try:
        [result] = await adapter.send_batch([message])
        return result
    finally:
        await adapter.aclose()
