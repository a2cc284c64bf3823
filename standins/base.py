"""What every HTTP stand-in is built on: the app with its admin routes, the thread-mode lifecycle
and the pool that posts callbacks to our webhooks.

Every HTTP stand-in is a bare ``aiohttp.web`` application (no framework on top, no
access log) so that in a benchmark the client, not the stand-in, is what is measured.
It binds 127.0.0.1 on an ephemeral port and hands back the base URL.

The provider APIs (``standins.twilio_api``, ``standins.wechat_api``) build on this module
and ``standins.server`` (process mode) builds on them, so nothing here may import either.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from standins.faults import AcceptedLog, FaultPlan, Faults

T = TypeVar("T")
HOST = "127.0.0.1"

# A callback ready to post: the URL (for the log line when it fails) and what posts it.
Delivery = tuple[str, Callable[[], Awaitable[object]]]


class Standin:
    """Base of the HTTP stand-ins: fault plan, accepted log, request counters, lifecycle.

    A stand-in in another process is controlled over its admin routes
    (``/_standin/faults``, ``/_standin/summary``, ``/_standin/reset``), which the
    thread-mode object offers too.
    """

    kind = "standin"

    def __init__(self, faults: FaultPlan | None = None) -> None:
        self.faults = Faults(faults)
        self.log = AcceptedLog()
        self.counts: Counter[str] = Counter()
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopped: asyncio.Event | None = None
        # For callbacks the stand-in makes to our webhooks (created on the server loop).
        self.session: aiohttp.ClientSession | None = None

    # -- subclasses ---------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    async def on_start(self) -> None:
        """Hook run on the server loop once it listens (start background workers)."""

    async def on_stop(self) -> None:
        """Hook run on the server loop before it closes."""

    def summary(self) -> dict[str, Any]:
        return {**self.log.summary(), "counts": dict(self.counts), "faults": dict(self.faults.drawn)}

    def reset(self) -> None:
        self.log.clear()
        self.counts.clear()
        self.faults.reset()

    # -- app ----------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application()
        app.add_routes(self.routes())
        app.add_routes(
            [
                web.get("/_standin/summary", self._admin_summary),
                web.post("/_standin/faults", self._admin_faults),
                web.post("/_standin/reset", self._admin_reset),
            ]
        )
        return app

    async def _admin_summary(self, request: web.Request) -> web.Response:
        return web.json_response(self.summary())

    async def _admin_faults(self, request: web.Request) -> web.Response:
        self.faults.configure(**(await request.json()))
        return web.json_response({"ok": True})

    async def _admin_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def serve(self, port: int = 0) -> int:
        """Start listening on the running loop; returns the bound port."""
        self._loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        # A short shutdown grace: a request hanging on an injected timeout must not hold up stop().
        self._runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, port, backlog=1024)
        await site.start()
        bound = int(self._runner.addresses[0][1])
        self.base_url = f"http://{HOST}:{bound}"
        await self.on_start()
        return bound

    async def shutdown(self) -> None:
        await self.on_stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.session is not None:
            await self.session.close()

    # -- thread mode ----------------------------------------------------------------
    def start(self) -> Standin:
        """Run on 127.0.0.1:<ephemeral> in a daemon thread with its own event loop."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._stopped = asyncio.Event()
            try:
                loop.run_until_complete(self.serve())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            stopped = self._stopped
            loop.run_until_complete(stopped.wait())
            loop.run_until_complete(self.shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"standin-{self.kind}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None or self._stopped is None:
            return
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)
        self._thread = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        """Run a coroutine on the stand-in's loop from another thread (tests)."""
        assert self._loop is not None, "stand-in not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> Standin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CallbackStandin(Standin):
    """A stand-in that calls our webhooks back, as the provider does after accepting a message.

    Callbacks go out from ``callback_workers`` tasks, not from the request handler, so the
    API answers at once and a slow webhook does not slow the sends being measured.
    """

    # How the log names a callback that could not be posted.
    callback_name = "callback"

    def __init__(self, faults: FaultPlan | None = None, *, callbacks: bool = True, callback_workers: int = 8) -> None:
        super().__init__(faults)
        self.callbacks = callbacks
        self.callback_workers = callback_workers
        self.callbacks_sent: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[Delivery] | None = None
        self._workers: list[asyncio.Task[None]] = []

    @property
    def posts_callbacks(self) -> bool:
        """Whether a callback scheduled now would be posted (enabled, and the workers are running)."""
        return self.callbacks and self._queue is not None

    def schedule_callback(self, url: str, post: Callable[[], Awaitable[object]]) -> None:
        """Queue ``post`` for the next free worker (with several workers, not necessarily in order)."""
        assert self._queue is not None
        self._queue.put_nowait((url, post))

    async def on_start(self) -> None:
        self._queue = asyncio.Queue()
        self._workers = [asyncio.create_task(self._callback_worker()) for _ in range(self.callback_workers)]

    async def on_stop(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def drain_callbacks(self) -> None:
        """Wait until every queued callback has been posted (run on the stand-in's loop)."""
        if self._queue is not None:
            await self._queue.join()

    async def _callback_worker(self) -> None:
        assert self._queue is not None
        while True:
            url, post = await self._queue.get()
            try:
                await post()
            except Exception as exc:  # our webhook being down must not stop the stand-in
                # Logged under the stand-in's own module, where the callback was built.
                logging.getLogger(type(self).__module__).warning("%s to %s failed: %s", self.callback_name, url, exc)
            finally:
                self._queue.task_done()
