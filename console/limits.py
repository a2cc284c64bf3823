"""Request limits: credentials before bodies, a body cap per route, and the HTTP server's timeouts.

Two parts, because they live at two levels:

- ``RequestLimitsMiddleware`` (plain ASGI, wired in ``console.app``) decides before the
  application reads a body. A request with a body to ``/api/*`` that has neither a valid
  ``X-API-Key`` nor a signed-in session gets the API's 401, and a console form post whose
  session holds no CSRF token gets the page's 403, both before a byte of the body is read.
  Then the body is capped by route: a declared ``Content-Length`` over the cap is answered
  413 at once; otherwise the bytes are counted as they arrive (chunked uploads too) and the
  request is cut off with a 413 as soon as the count passes the cap. Whenever the answer goes
  out with part of the body unread, it says ``Connection: close`` and the server closes the
  connection, so the client cannot make it read (and discard) the rest.
  Webhooks are capped but not pre-checked: Twilio signs the form itself, so its signature
  cannot be checked without reading the body, and the cap is what bounds that read.
- ``server_options()`` are the uvicorn settings ``journeys serve`` runs with: the keep-alive
  timeout and ``HeaderTimeoutH11Protocol``, which closes a connection that has not finished a
  request head within the header timeout of connecting or of its previous response (uvicorn
  itself times only a silent kept-alive connection, and one byte switched that off).

Settings (environment, read when the app or server starts; bytes and seconds, positive whole
numbers, anything else falls back to the default with a warning):

- ``JOURNEYS_MAX_BODY_API`` (default 65536): ``/api/*`` (events, customer upserts, task completion).
- ``JOURNEYS_MAX_BODY_HOOKS`` (default 65536): the provider webhooks under ``/hooks/``.
- ``JOURNEYS_MAX_BODY_FORMS`` (default 16384): console forms (login, claim, reassign, users, …).
- ``JOURNEYS_MAX_BODY_NOTES`` (default 65536): the task completion form, whose notes may hold
  4,000 characters (36,000 bytes form-encoded when they are Chinese).
- ``JOURNEYS_HEADER_TIMEOUT`` (default 10): seconds to send a complete request head.
- ``JOURNEYS_KEEPALIVE_TIMEOUT`` (default 5): seconds an idle kept-alive connection stays open.

Servers started some other way (``uvicorn console.app:create_app``) get the middleware but
not the header timeout unless they pass ``http=HeaderTimeoutH11Protocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from console import api, csrf
from console.auth import SESSION_USER

log = logging.getLogger(__name__)

KB = 1024
SAFE_METHODS = csrf.SAFE_METHODS
_NOTES_FORM = re.compile(r"/tasks/[^/]+/complete")


def _positive_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        # Zero would refuse every body (or time out every connection at once): refuse it loudly.
        log.warning("%s=%r is not a positive whole number; using %d", name, raw, default)
        return default
    return value


@dataclass(frozen=True)
class BodyLimits:
    """The largest request body each kind of route takes, in bytes."""

    api: int = 64 * KB
    hooks: int = 64 * KB
    forms: int = 16 * KB
    notes: int = 64 * KB

    @classmethod
    def from_env(cls) -> BodyLimits:
        return cls(
            api=_positive_env("JOURNEYS_MAX_BODY_API", cls.api),
            hooks=_positive_env("JOURNEYS_MAX_BODY_HOOKS", cls.hooks),
            forms=_positive_env("JOURNEYS_MAX_BODY_FORMS", cls.forms),
            notes=_positive_env("JOURNEYS_MAX_BODY_NOTES", cls.notes),
        )

    def cap_for(self, path: str) -> int:
        if path.startswith("/api/"):
            return self.api
        if path.startswith("/hooks/"):
            return self.hooks
        if _NOTES_FORM.fullmatch(path):
            return self.notes
        return self.forms


DEFAULT_BODY_LIMITS = BodyLimits()


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its cap.

    An ``HTTPException`` because FastAPI turns any other error met while reading a body into
    a 400; this one it passes on, and the app's handler answers it like any other."""

    def __init__(self, cap: int) -> None:
        super().__init__(status_code=413, detail=too_large_detail(cap))


def too_large_detail(cap: int) -> str:
    return f"request body too large: at most {cap} bytes"


PageRefusal = Callable[[Request, int, str | None], Response]  # (request, status, reason)


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None  # uvicorn's parser has already refused such a request


class RequestLimitsMiddleware:
    """Credentials before bodies, then the route's body cap (see the module docstring).

    Must sit inside the session middleware (it reads the signed session) and inside the
    security headers middleware (its own answers get the same headers).
    """

    def __init__(self, app: ASGIApp, *, limits: BodyLimits = DEFAULT_BODY_LIMITS,
                 refuse_page: PageRefusal | None = None) -> None:
        self.app = app
        self.limits = limits
        self.refuse_page = refuse_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        cap = self.limits.cap_for(path)
        headers = Headers(scope=scope)
        declared = _declared_length(headers)
        has_body = bool(declared) or "transfer-encoding" in headers
        received = 0
        complete = not has_body
        started = False

        async def capped_receive() -> Message:
            nonlocal received, complete
            if received > cap:
                raise BodyTooLarge(cap)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > cap:
                    raise BodyTooLarge(cap)
            return message

        async def closing_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not complete:
                    # The rest of the body was never read: closing the connection stops the
                    # client sending it, where keeping it alive would make the server read it all.
                    MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        if has_body and scope["method"] not in SAFE_METHODS:
            refusal = await self._refusal(scope, path)
            if refusal is not None:
                await refusal(scope, receive, closing_send)
                return
        if declared is not None and declared > cap:
            await self._too_large(scope, cap)(scope, receive, closing_send)
            return
        try:
            await self.app(scope, capped_receive, closing_send)
        except BodyTooLarge:
            # Reached only when nothing inside answered it (the app's handler normally does).
            if started:
                raise
            await self._too_large(scope, cap)(scope, receive, closing_send)

    async def _refusal(self, scope: Scope, path: str) -> Response | None:
        """The answer for a request whose body could not be accepted whatever it says, if any."""
        if path.startswith("/hooks/"):
            return None
        session: dict[str, Any] = scope.get("session") or {}
        request = Request(scope)
        if path.startswith("/api/"):
            if "x-api-key" not in request.headers and isinstance(session.get(SESSION_USER), int):
                return None  # a signed-in session: the route checks it in full (expiry, CSRF)
            try:
                # The API's own check of the key, so the answer is the route's own (401 for a
                # missing or unknown key); the route checks again, acting user included.
                await api.principal(request, allow_session=False)
            except HTTPException as exc:
                return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
            return None
        # Every console form is CSRF-checked, and the token lives in the session: a post whose
        # session has none is refused by the page whatever its body says.
        token = session.get(csrf.SESSION_KEY)
        if isinstance(token, str) and token:
            return None
        if self.refuse_page is not None:
            return self.refuse_page(request, 403, "csrf")
        return JSONResponse({"detail": "csrf"}, status_code=403)

    def _too_large(self, scope: Scope, cap: int) -> Response:
        """The 413: the API's and the webhooks' JSON, a person's page (a form) in their language."""
        path: str = scope["path"]
        if self.refuse_page is not None and not path.startswith(("/api/", "/hooks/")):
            return self.refuse_page(Request(scope), 413, None)
        return JSONResponse({"detail": too_large_detail(cap)}, status_code=413)


# --- the HTTP server ------------------------------------------------------------------------------


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections that do not finish a request head in time.

    The timer runs from the connection's start and from the end of each response, and stops
    when a request head is complete (uvicorn then starts a new request cycle). uvicorn's own
    keep-alive timer is cancelled by any byte received, so without this a client could hold a
    connection for ever by sending a head a byte at a time, or by sending nothing at all.
    """

    header_timeout: ClassVar[float] = 10.0

    _header_timer: asyncio.TimerHandle | None = None
    # The request cycle current when the timer started: a different one means a head has arrived.
    _cycle_awaited: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer(after=None)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._stop_header_timer_if_head_arrived()

    def on_response_complete(self) -> None:
        finished = self.cycle
        super().on_response_complete()
        self._start_header_timer(after=finished)
        # A pipelined request's head, already buffered, may have started a new cycle in the call above.
        self._stop_header_timer_if_head_arrived()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _start_header_timer(self, *, after: object) -> None:
        """Time the head of the request that follows the cycle ``after`` (None: the first one)."""
        self._cancel_header_timer()
        if self.transport.is_closing():
            return
        self._cycle_awaited = after
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _stop_header_timer_if_head_arrived(self) -> None:
        # uvicorn makes a new request cycle exactly when a complete request head has been parsed.
        if self._header_timer is not None and self.cycle is not self._cycle_awaited:
            self._cancel_header_timer()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        # A connection upgraded to another protocol (WebSocket) is no longer this one's to close.
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        # Mid-way through a message h11 refuses to record the close; the socket closes all the same.
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutH11Protocol]:
    """``HeaderTimeoutH11Protocol`` with its timeout set (uvicorn builds the protocol itself)."""

    class Configured(HeaderTimeoutH11Protocol):
        header_timeout = seconds

    Configured.__name__ = Configured.__qualname__ = "HeaderTimeoutH11Protocol"
    return Configured


def server_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that apply the timeouts from the environment."""
    return {
        "http": header_timeout_protocol(_positive_env("JOURNEYS_HEADER_TIMEOUT", 10)),
        "timeout_keep_alive": _positive_env("JOURNEYS_KEEPALIVE_TIMEOUT", 5),
    }
