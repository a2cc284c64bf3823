"""Running an HTTP stand-in in its own process (benchmarks), so it does not share the client's loop.

Thread mode (tests, demo) is ``Standin.start`` in ``standins.base``. Either way the stand-in
binds 127.0.0.1 on an ephemeral port and hands back the base URL. A stand-in in another
process is controlled over its admin routes (``/_standin/faults``, ``/_standin/summary``,
``/_standin/reset``), which the thread-mode object offers too.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
from collections.abc import Callable
from typing import Any

import aiohttp

from standins.base import HOST, Standin
from standins.jpush_api import JPushStandin
from standins.twilio_api import TwilioStandin
from standins.wechat_api import WeChatStandin

# What ``ProcessStandin(kind, ...)`` builds in the child process.
_KINDS: dict[str, Callable[..., Standin]] = {"twilio": TwilioStandin, "wechat": WeChatStandin,
                                             "jpush": JPushStandin}


def _build(kind: str, options: dict[str, Any]) -> Standin:
    if kind not in _KINDS:
        raise ValueError(f"unknown stand-in kind {kind!r}")
    return _KINDS[kind](**options)


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
