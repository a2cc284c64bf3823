"""Touches that failed over to another channel, made by the real dispatcher against an HTTP stand-in.

Three customers get an SMS with e-mail as its fallback; the first two numbers are refused as invalid, so
those two touches fail over to e-mail: ``failed_over`` is 2 in total and under ``sms`` by channel.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from engine.sending.dispatch import Dispatcher
from store.db import make_engine
from tests.dispatch_support import HttpAdapter, PlainRenderer, RecordingProvider, make_customers, make_touches

FAILED_OVER = 2


async def _dispatch(dispatcher: Dispatcher) -> None:
    try:
        await dispatcher.run_until_idle()
    finally:
        await dispatcher.aclose()


def fail_over_two(db_url: str, *, journey: str = "j1", first_customer: int = 0) -> None:
    """Dispatch three SMS touches due a minute ago, two of which fail over to e-mail."""
    engine = make_engine(db_url)
    try:
        ids = make_customers(engine, 3, start=first_customer)
        make_touches(engine, ids, fallback=["email"], journey=journey)
        phones = [f"+86138{first_customer + i:08d}" for i in range(FAILED_OVER)]
        with RecordingProvider().running() as provider:
            provider.fail = {phone: (400, "21211") for phone in phones}  # Twilio's "invalid number"
            adapters = {ch: HttpAdapter(ch, provider.port) for ch in ("sms", "wechat", "email")}
            dispatcher = Dispatcher(engine, adapters, PlainRenderer(), worker_id="w1")  # type: ignore[arg-type]
            # A thread of its own: a browser test's thread already runs Playwright's event loop.
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, _dispatch(dispatcher)).result()
    finally:
        engine.dispose()
