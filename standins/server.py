"""Running a stand-in: in a background thread (tests, demo) or in its own process (benchmarks).

Every HTTP stand-in is a bare ``aiohttp.web`` application (no framework on top, no
access log) so that in a benchmark the client, not the stand-in, is what is measured.
Both ways bind 127.0.0.1 on an ephemeral port and hand back the base URL.

A stand-in in another process is controlled over its admin routes
(``/_standin/faults``, ``/_standin/summary``, ``/_standin/reset``), which the
thread-mode object offers too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import threading
from collections import Counter
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from standins.faults import AcceptedLog, FaultPlan, Faults

T = TypeVar("T")
HOST = "127.0.0.1"


class Standin:
    """Base of the HTTP stand-ins: fault plan, accepted log, request counters, lifecycle."""

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


# -- process mode ------------------------------------------------------------------


def _build(kind: str, options: dict[str, Any]) -> Standin:
    if kind == "twilio":
        from standins.twilio_api import TwilioStandin

        return TwilioStandin(**options)
    if kind == "wechat":
        from standins.wechat_api import WeChatStandin

        return WeChatStandin(**options)
    raise ValueError(f"unknown stand-in kind {kind!r}")


def _serve_forever(kind: str, options: dict[str, Any], conn: multiprocessing.connection.Connection) -> None:
    async def main() -> None:
        standin = _build(kind, options)
        port = await standin.serve()
        conn.send(port)
        # The parent ends us by closing its end of the pipe (or terminating the process).
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _wait_closed, conn)
        await standin.shutdown()

    asyncio.run(main())


def _wait_closed(conn: multiprocessing.connection.Connection) -> None:
    with contextlib.suppress(EOFError):
        conn.recv()


class ProcessStandin:
    """A stand-in served by a separate process, so it does not share the client's event loop."""

    def __init__(self, kind: str, **options: Any) -> None:
        self.kind = kind
        self.options = options
        self.base_url = ""
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None

    def start(self) -> ProcessStandin:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve_forever, args=(self.kind, self.options, child), daemon=True)
        self._process.start()
        child.close()
        if not parent.poll(30):
            self.stop()
            raise TimeoutError(f"{self.kind} stand-in did not start")
        port = parent.recv()
        self._conn = parent
        self.base_url = f"http://{HOST}:{port}"
        return self

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(10)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(5)
            self._process = None

    async def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base_url + path, json=body) as resp,
        ):
            result: dict[str, Any] = await resp.json()
            return result

    async def summary(self) -> dict[str, Any]:
        return await self._admin("GET", "/_standin/summary")

    async def configure_faults(self, **changes: Any) -> None:
        await self._admin("POST", "/_standin/faults", changes)

    async def reset(self) -> None:
        await self._admin("POST", "/_standin/reset")

    def __enter__(self) -> ProcessStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
