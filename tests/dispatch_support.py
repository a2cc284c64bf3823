"""Helpers for the dispatch tests: bulk-made customers and touches, a small recording HTTP
provider started on loopback, and a channel adapter that talks to it over real HTTP."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session

from channels.base import ErrorClass, OutboundMessage, RenderedMessage, SendResult
from engine.sending.claiming import ClaimedTouch
from engine.sending.dispatch import Dispatcher
from store.clock import as_utc, utcnow
from store.models import Customer, Touch


def daytime_zone(at: datetime | None = None) -> str:
    """A fixed-offset zone where it is 14:00 at ``at`` (default now), hours from any channel's quiet hours
    (config/delivery.yaml's lie between 20:00 and 09:00): customers there make a test that dispatches at the
    wall clock send the same whatever the hour of the day it runs at."""
    moment = as_utc(at or utcnow())
    offset = (14 - moment.hour) % 24
    if offset > 14:  # zones run from UTC-12 to UTC+14
        offset -= 24
    # The POSIX sign: Etc/GMT-8 is eight hours ahead of UTC.
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def make_customers(engine: Engine, n: int, *, consent: bool = True, start: int = 0,
                   timezone: str = "Asia/Shanghai") -> list[int]:
    now = utcnow()
    rows = [
        {
            "external_id": f"C{start + i:07d}",
            "name": f"客户{start + i}",
            "phone": f"+86138{start + i:08d}",
            "email": f"c{start + i}@example.com",
            "wechat_openid": f"openid-{start + i}",
            "consent_sms": consent,
            "consent_wechat": consent,
            "consent_email": consent,
            "preferred_channels": ["sms"],
            "attributes": {},
            "created_at": now,
            "updated_at": now,
            "tier": "silver",
            "timezone": timezone,
            "locale": "zh-CN",
            "branch": "sh",
        }
        for i in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Customer.__table__), rows)  # type: ignore[attr-defined]
        ids = conn.exec_driver_sql("SELECT id FROM customer ORDER BY id").scalars().all()
    return [int(i) for i in ids][-n:]


def make_touches(
    engine: Engine,
    customer_ids: list[int],
    *,
    channel: str = "sms",
    fallback: list[str] | None = None,
    due: datetime | None = None,
    step: str = "s1",
    journey: str = "j1",
) -> None:
    now = utcnow()
    due = due or now - timedelta(minutes=1)
    rows = [
        {
            "key": f"{cid}:{journey}:{step}:2026-01",
            "customer_id": cid,
            "journey_id": journey,
            "journey_version": "v1",
            "step_id": step,
            "occurrence": "2026-01",
            "category": "service",
            "urgent": False,
            "channel": channel,
            "fallback_channels": list(fallback or []),
            "template": "t",
            "planned_for": due,
            "due_at": due,
            "status": "planned",
            "attempts": 0,
            "created_at": now,
        }
        for cid in customer_ids
    ]
    with engine.begin() as conn:
        conn.execute(insert(Touch.__table__), rows)  # type: ignore[attr-defined]


class PlainRenderer:
    """Renders every touch as one short text (the templates have their own tests)."""

    def render_all(self, session: Session, touches: Sequence[ClaimedTouch], customers: dict[int, Customer],
                   now: datetime) -> list[RenderedMessage | BaseException]:
        return [RenderedMessage(channel=t.channel, template=t.template, locale="zh-CN", text=f"hello {t.step_id}")
                for t in touches]


class RecordingProvider:
    """A provider on loopback: accepts POST /send (form: key, to, text), answers 201 with an id;
    ``fail`` maps a recipient to (http status, error code) to answer instead."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, str]] = []  # (key, to)
        self.fail: dict[str, tuple[int, str]] = {}
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    def keys(self) -> Counter[str]:
        return Counter(k for k, _ in self.accepted)

    async def _send(self, request: web.Request) -> web.Response:
        form = await request.post()
        to = str(form["to"])
        if to in self.fail:
            status, code = self.fail[to]
            return web.json_response({"code": code, "message": f"rejected {to}"}, status=status)
        self.accepted.append((str(form["key"]), to))
        return web.json_response({"sid": f"SM{len(self.accepted):08d}"}, status=201)

    @contextmanager
    def running(self) -> Iterator[RecordingProvider]:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/send", self._send)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        ready.wait(10)
        try:
            yield self
        finally:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(10)


class HttpAdapter:
    """A ChannelAdapter speaking to ``RecordingProvider`` over HTTP, classifying errors like the real ones."""

    def __init__(self, channel: str, port: int, concurrency: int = 32) -> None:
        self.channel = channel
        self.url = f"http://127.0.0.1:{port}/send"
        self._session: aiohttp.ClientSession | None = None
        self._sem = asyncio.Semaphore(concurrency)
        self.calls = 0

    async def _one(self, session: aiohttp.ClientSession, m: OutboundMessage) -> SendResult:
        async with self._sem:
            data: dict[str, Any] = {"key": m.touch_key, "to": m.to, "text": m.content.text}
            async with session.post(self.url, data=data) as resp:
                body = await resp.json()
                if resp.status == 201:
                    return SendResult(m.touch_key, True, provider_message_id=body["sid"], provider_status="queued")
                klass: ErrorClass = "retryable" if resp.status >= 500 or resp.status == 429 else "permanent"
                return SendResult(m.touch_key, False, error_class=klass, error_code=body["code"],
                                  error_reason=body["message"])

    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        self.calls += 1
        if self._session is None:
            self._session = aiohttp.ClientSession()
        session = self._session
        return list(await asyncio.gather(*(self._one(session, m) for m in messages)))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def recording_dispatcher(engine: Engine, provider: RecordingProvider, worker: str = "w1",
                         **options: Any) -> Dispatcher:
    """The real dispatcher, as worker ``worker``, sending SMS, WeChat and e-mail over HTTP to ``provider`` in
    plain text; ``options`` go to it as they are (batch size, lanes, attempts, quiet hours)."""
    adapters = {ch: HttpAdapter(ch, provider.port) for ch in ("sms", "wechat", "email")}
    return Dispatcher(engine, adapters, PlainRenderer(), worker_id=worker, **options)  # type: ignore[arg-type]


def dispatch_until_idle(dispatcher: Any, now: datetime | None = None) -> Any:
    """Run an ``engine.sending.dispatch.Dispatcher`` until nothing is due (at ``now``, default the
    dispatcher's clock), then close its adapters."""

    async def run() -> Any:
        try:
            return await dispatcher.run_until_idle(now=now) if now is not None else await dispatcher.run_until_idle()
        finally:
            await dispatcher.aclose()

    return asyncio.run(run())



def service_sends(url: str, start: datetime, until: datetime, *, every: timedelta = timedelta(minutes=30),
                  between: Callable[[datetime, datetime], None] | None = None, channels: Sequence[str] = ("sms",),
                  **planning: Any) -> list[str]:
    """What ``journeys run`` sends from ``start`` to ``until``: a plan tick (``plan_ahead`` at the simulated
    moment) every ``every``, each followed by dispatch (the service's dispatcher, with the delivery settings and
    journeys in force) over ``channels`` to a provider on loopback; ``between(last, tick)`` is called before
    each tick, for what happens between two (an event, a retier). ``planning``: how the ticks plan
    (``workers``, ``chunk``). The keys sent, in the order sent."""
    from engine.planning.planner import plan_ahead
    from engine.sending.dispatch import make_dispatcher
    from store.clock import simulated_time
    from store.db import make_engine

    ticks = [start + every * n for n in range(1, (until - start) // every + 1)]
    engine = make_engine(url)
    try:
        with RecordingProvider().running() as sms:
            dispatcher = make_dispatcher(engine, {c: HttpAdapter(c, sms.port) for c in channels},
                                         renderer=PlainRenderer(), worker_id="w1")
            for last, tick in zip([start, *ticks], ticks, strict=False):
                if between is not None:
                    between(last, tick)
                with simulated_time(functools.partial(_fixed, tick)):
                    plan_ahead(tick, url=url, **planning)
                dispatch_until_idle(dispatcher, now=tick)
            return [key for key, _ in sms.accepted]
    finally:
        engine.dispose()


def _fixed(moment: datetime) -> datetime:
    return moment
