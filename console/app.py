"""The console's app factory: pages, REST API, static files, sessions, CSRF and error pages."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console import (
    api,
    api_customers,
    api_policies,
    form_errors,
    queues,
    routes_admin,
    routes_auth,
    routes_ops,
    routes_review,
    routes_seed_send,
    routes_tasks,
)
from console.auth import NotAuthenticated
from console.config import ConsoleSettings
from console.desk_schedule import DeskTimer
from console.i18n import SUPPORTED, translations
from console.limits import BodyLimits, PageRefusal, RequestLimitsMiddleware
from console.tasks import TaskError
from console.throttle import LoginLimits
from console.web import flash, render
from store.clock import utcnow
from store.masking import install_masking_everywhere

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Everything the pages load comes from this app: the console works offline and nothing leaks to a CDN.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
# The webhooks' only page (unsubscribe confirmation) is one self-contained document with an
# inline style and a form posting to itself; nothing else may load or frame it.
HOOKS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The console needs none of these browser features; saying so stops an injected script using them.
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()"
)
HSTS = "max-age=31536000"
SESSION_COOKIE = "journeys_session"
# Refusals a person meets on a page, answered with the error page in their language (error.html words each).
PAGE_ERRORS = (403, 404, 405, 413)
ROUTER_FACTORY_NAMES = ("create_hooks_router", "create_router", "make_router", "build_router", "get_router")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _mount_receipts(app: FastAPI, db_url: str | None) -> None:
    """Mount the channel webhooks (``engine.loop.receipts``) at /hooks when that module offers a router."""
    try:
        module = importlib.import_module("engine.loop.receipts")
    except ImportError:
        return
    except Exception as exc:  # a broken optional module must not stop the console
        log.warning("engine.loop.receipts could not be imported, webhooks not mounted: %s", exc)
        return
    factory = next((getattr(module, n) for n in ROUTER_FACTORY_NAMES if callable(getattr(module, n, None))), None)
    if factory is None:
        return
    try:
        router = factory(db_url=db_url)
    except TypeError:
        try:
            router = factory()
        except TypeError:
            log.warning("engine.loop.receipts router factory needs arguments; webhooks not mounted")
            return
    paths = [getattr(r, "path", "") for r in getattr(router, "routes", [])]
    prefix = "" if paths and all(p.startswith("/hooks") for p in paths) else "/hooks"
    app.include_router(router, prefix=prefix)
    app.state.receipts_mounted = True


class SecurityHeadersMiddleware:
    """Security headers on every response, as plain ASGI.

    Starlette's ``@app.middleware("http")`` (BaseHTTPMiddleware) costs about a millisecond per
    request in task switching, which showed in the event path's latency at 200 events/s.
    Headers a handler set itself (e.g. a webhook) are kept.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                defaults = {
                    "content-security-policy": (
                        HOOKS_CONTENT_SECURITY_POLICY if path.startswith("/hooks/") else CONTENT_SECURITY_POLICY
                    ),
                    "x-content-type-options": "nosniff",
                    "x-frame-options": "DENY",
                    "referrer-policy": "same-origin",
                    "permissions-policy": PERMISSIONS_POLICY,
                    "cross-origin-opener-policy": "same-origin",
                }
                if https:
                    # Only over https: sent over http it would be ignored anyway, and a plain-http test
                    # or laptop run must not teach a browser to insist on https for that host.
                    defaults["strict-transport-security"] = HSTS
                if not path.startswith("/static/"):
                    # Pages, API answers and redirects may carry customer data or a session: never
                    # cached. The shipped CSS and JS hold nothing private and may be.
                    defaults["cache-control"] = "no-store"
                for name, value in defaults.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class UnexpectedErrorMiddleware:
    """A handler that fails answers a 500 like any other refusal: the console's error page, or
    ``{"detail": "internal_error"}`` under /api/, with no traceback or SQL in it.

    It sits inside ``SecurityHeadersMiddleware`` so the 500 carries the same headers as every
    answer. Starlette's own last resort is the outermost layer, outside every middleware, and it
    re-raises after answering, which makes the server drop the keep-alive connection: a client
    reusing it got "connection reset" on its next request. A failure after the answer has started
    cannot be answered again, so it is re-raised and the connection is closed as it must be.
    """

    def __init__(self, app: ASGIApp, *, page: PageRefusal) -> None:
        self.app = app
        self.page = page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise
            log.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            await self._answer(scope)(scope, receive, send)

    def _answer(self, scope: Scope) -> Response:
        request = Request(scope)
        if _is_api(request):
            return JSONResponse({"detail": "internal_error"}, status_code=500)
        try:
            return self.page(request, 500, None)
        except Exception:  # the page needs the database, which may be what failed
            log.exception("the error page could not be rendered either")
            return PlainTextResponse("Internal Server Error", status_code=500)


class SchemeAwareSessionMiddleware:
    """Starlette's signed-cookie sessions, HttpOnly and SameSite=Lax, Secure whenever the request came by https.

    Starlette fixes the Secure flag when the middleware is built; this picks one of two
    otherwise identical middlewares per request, so a console reached by https (directly, or
    through a proxy with uvicorn's --proxy-headers) always gets a Secure cookie, and
    ``force_secure`` makes it Secure even on requests that arrive as http.
    """

    def __init__(self, app: ASGIApp, *, secret_key: str, session_cookie: str, max_age: int,
                 force_secure: bool = False) -> None:
        def build(https_only: bool) -> SessionMiddleware:
            return SessionMiddleware(app, secret_key=secret_key, session_cookie=session_cookie, max_age=max_age,
                                     same_site="lax", https_only=https_only)

        self.secure = build(True)
        self.plain = self.secure if force_secure else build(False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chosen = self.secure if scope.get("scheme") in ("https", "wss") else self.plain
        await chosen(scope, receive, send)


def _message(error: dict[str, Any]) -> str:
    """A validation error's message; for a body that is not JSON, what the reader found wrong with it."""
    reason = (error.get("ctx") or {}).get("error") if error.get("type") == "json_invalid" else None
    return f"{error.get('msg')}: {reason}" if reason else str(error.get("msg"))


def create_app(database_url: str | None = None, settings: ConsoleSettings | None = None,
               clock: Callable[[], datetime] | None = None) -> FastAPI:
    """The console app; ``database_url`` defaults to JOURNEYS_DATABASE_URL (or the embedded SQLite file).

    ``clock`` (default: the real UTC clock) times sessions and login lockouts; tests pass their own.
    """
    settings = settings or ConsoleSettings.from_env(database_url)
    # Request lines carry phone numbers and e-mails in paths and queries; whatever server runs
    # the app, its access log goes through the same masking as every other record.
    install_masking_everywhere()
    for locale in SUPPORTED:
        translations(locale)  # compile the catalogues now: a broken .po fails at startup, not on a page
    # The queue declarations likewise: a broken config/queues.yaml stops the start, every problem at its line.
    queues.check()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The desk's SLA round runs with the console, not only when someone calls it.
        timer = DeskTimer(settings.desk_every, app.state.clock, settings.database_url) \
            if settings.desk_every > 0 else None
        app.state.desk_timer = timer
        if timer is not None:
            timer.start()
        try:
            yield
        finally:
            if timer is not None:
                await asyncio.to_thread(timer.stop)

    app = FastAPI(
        lifespan=lifespan,
        title="Service Journeys console",
        version="0.1.0",
        # Swagger UI and ReDoc load their assets from a CDN; the schema alone works offline.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.receipts_mounted = False
    app.state.desk_timer = None

    app.state.clock = clock or utcnow
    app.state.login_limits = LoginLimits(settings)

    # Innermost of the four: it reads the session the outer one decoded, and its own refusals
    # (401/403/413 before a body is read) get the security headers like every other answer.
    app.add_middleware(RequestLimitsMiddleware, limits=BodyLimits.from_env(), refuse_page=_error_page)
    app.add_middleware(UnexpectedErrorMiddleware, page=_error_page)
    app.add_middleware(SecurityHeadersMiddleware)

    app.add_middleware(
        SchemeAwareSessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        # The cookie outlives no session; the idle and absolute limits are checked on the server
        # (console.auth.load_user) because the cookie's own age is only refreshed, never capped.
        max_age=settings.session_lifetime,
        force_secure=settings.cookie_secure,
    )

    @app.exception_handler(NotAuthenticated)
    async def not_authenticated(request: Request, exc: NotAuthenticated) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": str(exc)}, status_code=401)
        if exc.expired:
            flash(request, "Your session has ended. Please log in again.", "info")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    @app.exception_handler(TaskError)
    async def task_error(request: Request, exc: TaskError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": exc.code}, status_code=exc.status)
        return _error_page(request, exc.status)

    # Starlette's own class: the router's refusals (an address no route has, 404; a method the route does not
    # take, 405, like a bookmarked form address) are people's too, and were FastAPI's bare JSON in English.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if form_errors.for_people(request) and exc.status_code == 422 and isinstance(exc.detail, str):
            # A page route refusing one field's value (detail: the field's name).
            return form_errors.refused(request, [{"type": "value_error", "loc": ["body", exc.detail]}],
                                       _error_page)
        # The webhooks' callers are programs, but their one page (unsubscribing) is read: its 403 and 404 too.
        shown: tuple[int, ...] = (PAGE_ERRORS if form_errors.for_people(request)
                                  else () if _is_api(request) else (403, 404))
        if exc.status_code not in shown:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        response = _error_page(request, exc.status_code, "csrf" if exc.detail == "csrf" else None)
        if exc.headers:  # a 405's Allow
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if form_errors.for_people(request):
            return form_errors.refused(request, exc.errors(), _error_page)
        # FastAPI's shape ({"detail": [{"loc": [...], "msg": ...}]}) names the field at fault.
        errors: list[dict[str, Any]] = [
            {"type": e.get("type"), "loc": list(e.get("loc", [])), "msg": _message(e)} for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    # The console's pages are not an API: their forms are no contract for other programs, so the OpenAPI
    # document (public, like the README that lists the same API) describes /api and the webhooks only.
    for pages in (routes_auth, routes_tasks, routes_ops, routes_review, routes_seed_send, routes_admin):
        app.include_router(pages.router, include_in_schema=False)
    app.include_router(api.router)
    app.include_router(api_customers.router)
    app.include_router(api_policies.router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    _mount_receipts(app, settings.database_url)
    return app


def _error_page(request: Request, status: int, reason: str | None = None) -> Response:
    """The error page; ``reason`` "csrf" is a form whose token this session does not hold (open since before a
    restart or a sign-out), told as a form to send again with a way back to it, not as a right refused."""
    from console.auth import load_user

    try:
        user = load_user(request)
    except NotAuthenticated:
        user = None
    again = form_errors.form_page(request) if reason == "csrf" else None
    return render(request, "error.html", user, status_code=status, status=status, reason=reason, again=again)

