"""A worker id is held by one live dispatcher at a time (engine.sending.worker_lease).

Two dispatchers given the same id used to take each other's claims for their own: the second settled
the first one's sends in flight as its dead predecessor's and sent them again, and the first, renewing
its claims by name, went on sending what the second had claimed. Real parts: dispatchers on one
database (a SQLite file, and PostgreSQL), the Twilio SDK and stand-in; the second dispatcher runs
inside the first one's first send, while that one's claims are in flight.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel.sql.sqltypes import UTCDateTime

from channels.sms_twilio import TwilioSmsAdapter
from engine.sending.dispatch import Dispatcher
from engine.sending.worker_lease import WorkerIdHeld, WorkerLease
from standins.twilio_api import TwilioStandin
from store.clock import utcnow
from store.db import make_engine
from tests.dispatch_support import PlainRenderer, daytime_zone, dispatch_until_idle, make_customers, make_touches

# Twilio's adapter; after its first chunk, another process's turn runs while this dispatcher's loop stands still.
from tests.sending.test_claim_lease import SlowFirstSend

FROM = "+15005550006"
CALLBACK = "http://127.0.0.1:9/hooks/twilio/status"  # carries the touch key; nothing listens
N = 4


def _adapter(standin: TwilioStandin) -> TwilioSmsAdapter:
    return TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url, timeout=5)


def _dispatcher(engine: Engine, adapter: Any, clock: Callable[[], datetime]) -> Dispatcher:
    # One touch a chunk (a low rate): the first chunk is out while the others wait their turn.
    return Dispatcher(engine, {"sms": adapter}, PlainRenderer(), worker_id="w1", rate_limits={"sms": 10},
                      callback_url=lambda channel, touch: CALLBACK, clock=clock)


async def _run_batch(dispatcher: Dispatcher, now: datetime) -> Any:
    try:
        return await dispatcher.run_batch(now)
    finally:
        await dispatcher.aclose()


def _touches(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT key, status, claimed_by, provider_message_id FROM touch")).all())


def _holder(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT worker_id, instance FROM worker_lease")).all())


@pytest.fixture
def engine(migrated_any_db: str) -> Engine:
    engine = make_engine(migrated_any_db)
    start = utcnow()
    make_touches(engine, make_customers(engine, N, timezone=daytime_zone(start)), channel="sms", due=start)
    return engine


def test_a_second_dispatcher_with_the_same_id_is_refused_while_the_first_sends(engine: Engine) -> None:
    refused: list[WorkerIdHeld] = []
    report: dict[str, Any] = {}
    with TwilioStandin(callbacks=False) as standin:
        assert isinstance(standin, TwilioStandin)

        def second() -> None:
            try:
                report["second"] = dispatch_until_idle(_dispatcher(engine, _adapter(standin), utcnow))
            except WorkerIdHeld as held:
                refused.append(held)

        first = _dispatcher(engine, SlowFirstSend(_adapter(standin), second), utcnow)
        report["first"] = asyncio.run(_run_batch(first, utcnow()))
        # Let go of at the first one's clean exit: the id is free at once, not after the lease.
        assert _holder(engine) == []
        report["third"] = dispatch_until_idle(_dispatcher(engine, _adapter(standin), utcnow))

    assert "second" not in report and len(refused) == 1
    assert refused[0].holder.worker_id == "w1" and "last seen" in str(refused[0])
    assert report["first"].sent == N and report["third"].claimed == 0
    assert standin.log.duplicates() == {}
    rows = _touches(engine)
    assert {r.status for r in rows} == {"sent"} and set(standin.log.keys()) == {r.key for r in rows}
    assert len({r.provider_message_id for r in rows}) == N
    engine.dispose()


def test_a_holder_unseen_past_the_lease_is_taken_over_and_its_sends_settled_once(engine: Engine) -> None:
    """The first dispatcher stops being seen in the middle of its batch (its heartbeat stops: a process that
    died, or one stopped for longer than the lease). Another process given its id is refused while the
    heartbeat is recent; past the lease it takes the id and settles the first one's touches in flight once
    (Twilio has the first: recorded; the other three: sent). If the first one wakes up after all, it sends
    none of them again."""
    start = utcnow()
    clock = [start]
    report: dict[str, Any] = {}
    with TwilioStandin(callbacks=False) as standin:
        assert isinstance(standin, TwilioStandin)

        def successor() -> None:
            first.lease.stop()  # no heartbeat from here on
            clock[0] = start + timedelta(minutes=1)
            with pytest.raises(WorkerIdHeld) as held:
                dispatch_until_idle(_dispatcher(engine, _adapter(standin), lambda: clock[0]))
            report["refused"] = held.value
            clock[0] = start + timedelta(minutes=6)
            report["successor"] = dispatch_until_idle(_dispatcher(engine, _adapter(standin), lambda: clock[0]))

        first = _dispatcher(engine, SlowFirstSend(_adapter(standin), successor), lambda: clock[0])
        report["first"] = asyncio.run(_run_batch(first, start))

    assert "(60 s ago)" in str(report["refused"])
    assert report["successor"].reconciled["found_sent"] == 1 and report["successor"].reconciled["resend"] == N - 1
    assert report["successor"].sent == N - 1 and report["first"].sent == 1
    assert standin.log.duplicates() == {}
    rows = _touches(engine)
    assert {r.status for r in rows} == {"sent"} and len({r.provider_message_id for r in rows}) == N
    assert _holder(engine) == []  # the successor exited cleanly; the first no longer held the id to let go of
    engine.dispose()


def test_a_dispatcher_whose_id_was_taken_over_stops(engine: Engine) -> None:
    """A process not seen past the lease (stopped, or cut off from the database) whose id another process then
    took finds out at its next heartbeat: it claims nothing more, and ``run_forever`` returns rather than idle on
    under an id it no longer holds."""
    with TwilioStandin(callbacks=False) as standin:
        assert isinstance(standin, TwilioStandin)
        unseen = _dispatcher(engine, _adapter(standin), utcnow)
        unseen.hold()
        successor = _dispatcher(engine, _adapter(standin), lambda: utcnow() + timedelta(minutes=6))
        successor.hold()
        assert not unseen.lease.beat() and unseen.lease.lost.is_set()

        async def run_on() -> Any:
            try:
                # The bound only keeps a dispatcher that never stops from holding the suite up.
                return await asyncio.wait_for(unseen.run_forever(asyncio.Event(), idle_seconds=0.01), 120)
            finally:
                await unseen.aclose()
                await successor.aclose()

        counts = asyncio.run(run_on())
    assert counts.claimed == 0 and standin.log.keys() == {}
    assert {r.status for r in _touches(engine)} == {"planned"}
    engine.dispose()


def test_the_heartbeat_renews_the_id_while_it_is_held_and_stops_when_let_go_of(engine: Engine) -> None:
    """The thread renews the id on its own (a batch slower than the lease keeps it), and nothing renews a
    released id: another process then takes it at once."""
    start = utcnow()
    clock = [start]
    lease = WorkerLease(engine, "w1", lambda: clock[0], beat_every=timedelta(milliseconds=10))
    lease.take()
    clock[0] = start + timedelta(minutes=4)
    renewed = threading.Event()
    for _ in range(3000):  # until the thread has renewed it, a minute at most
        with engine.connect() as conn:
            seen = conn.execute(text("SELECT seen_at FROM worker_lease").columns(seen_at=UTCDateTime())).scalar_one()
        if seen == clock[0]:
            renewed.set()
            break
        renewed.wait(0.02)
    assert renewed.is_set()
    # Seen four minutes after it was taken: at six, another process is still refused (a minute and more left).
    with pytest.raises(WorkerIdHeld):
        WorkerLease(engine, "w1", lambda: start + timedelta(minutes=6)).take()
    lease.release()
    assert _holder(engine) == []
    successor = WorkerLease(engine, "w1", lambda: start + timedelta(minutes=6))
    successor.take()
    successor.release()
    engine.dispose()
