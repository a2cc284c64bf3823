"""A recording webhook endpoint: where stand-ins deliver callbacks in tests and the demo.

Runs on the caller's event loop (``async with WebhookSink() as sink``), answers 200
(or ``reply``) to any POST and keeps the request's full URL, headers and body, so a
test can check signatures exactly as our receipts endpoint would see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from standins.base import HOST


@dataclass(frozen=True)
class Received:
    url: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


class WebhookSink:
    def __init__(self, reply: str = "", content_type: str = "text/plain") -> None:
        self.received: list[Received] = []
        self.reply = reply
        self.content_type = content_type
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        # The URL exactly as requested (raw path and query): what senders sign.
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        self.received.append(Received(url, request.path, dict(request.query), dict(request.headers), body))
        return web.Response(text=self.reply, content_type=self.content_type)

    async def start(self) -> WebhookSink:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self.base_url = f"http://{HOST}:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def __aenter__(self) -> WebhookSink:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
