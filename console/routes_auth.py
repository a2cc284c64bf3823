"""Login, logout, the start page per role and the user's own language setting."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console import csrf, text_rules
from console.auth import NotAuthenticated, attempt_login, audit, clock_of, end_session, load_user, start_session
from console.deps import current_user, db_url
from console.i18n import SUPPORTED
from console.throttle import LoginLimits
from console.web import flash, redirect, render, safe_next
from store.db import session_scope
from store.models import AppUser

# Every form: its CSRF token first, then no control character in any field or query parameter
# (console.text_rules).
router = APIRouter(dependencies=[Depends(csrf.protect), Depends(text_rules.check_request)])

HOME_BY_ROLE = {"agent": "/inbox", "supervisor": "/inbox", "ops": "/ops/journeys", "admin": "/admin/users"}
HOME_BY_ROLE["compliance"] = "/ops/review"  # changes waiting for their approval


@router.get("/", response_class=RedirectResponse)
def home(request: Request) -> RedirectResponse:
    try:
        user = load_user(request)
    except NotAuthenticated:
        return redirect("/login")
    return redirect(HOME_BY_ROLE.get(user.role, "/login"))


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", None, next=safe_next(next), error=None, username="")


def client_address(request: Request) -> str:
    # The socket's peer. Behind a reverse proxy run uvicorn with --proxy-headers (and
    # --forwarded-allow-ips) so that this is the agent's address; a raw X-Forwarded-For
    # is not read here because any client can send one and dodge the limit with it.
    return request.client.host if request.client else "unknown"


def _locked(request: Request, next: str, username: str, until: datetime, now: datetime) -> HTMLResponse:
    minutes = max(1, math.ceil((until - now).total_seconds() / 60))
    response = render(request, "login.html", None, status_code=429, next=safe_next(next), error="locked",
                      minutes=minutes, username=username)
    response.headers["Retry-After"] = str(max(1, math.ceil((until - now).total_seconds())))
    return response


@router.post("/login", response_model=None)
def login(  # nosec B107 # an empty default is a missing form field, i.e. a failed login
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=512)] = "/",
) -> HTMLResponse | RedirectResponse:
    settings = request.app.state.settings
    limits: LoginLimits = request.app.state.login_limits
    now = clock_of(request)
    address = client_address(request)
    # One spelling per name for the limits on unknown names too: 'Nobody' and 'NOBODY' are one guess.
    name = username.strip().lower()
    # Refused before the password is checked: a blocked address or name learns nothing and costs no hashing.
    blocked = limits.by_address.blocked_until(address, now) or limits.unknown_names.blocked_until(name, now)
    if blocked is not None:
        return _locked(request, next, username, blocked, now)
    result = attempt_login(name, password, db_url(request), now=now, max_failures=settings.login_max_failures,
                           lockout=timedelta(seconds=settings.login_lockout))
    if result.user is None:
        until = result.locked_until
        if result.outcome == "unknown":
            name_until = limits.unknown_names.fail(name, now)
            if name_until is not None:
                # Recorded like a real account's lockout; the audit log is not shown to the person trying.
                _audit_lockout(request, name[:64] or "?", "login_lockout", "user", name[:64] or "?",
                               {"known": False, "until": name_until.isoformat()}, now)
                until = name_until
        address_until = limits.by_address.fail(address, now)
        if address_until is not None:
            _audit_lockout(request, "anonymous", "login_ip_lockout", "address", address,
                           {"failures": limits.by_address.limit, "until": address_until.isoformat()}, now)
            until = max(until, address_until) if until is not None else address_until
        if until is not None:
            return _locked(request, next, username, until, now)
        return render(request, "login.html", None, status_code=401, next=safe_next(next), error="wrong",
                      username=username)
    user = result.user
    # A fresh session (and CSRF token) at login, so nothing chosen before login carries over.
    start_session(request, user, now)
    csrf.rotate(request)
    target = safe_next(next)
    return redirect(target if target != "/" else HOME_BY_ROLE.get(user.role, "/"))


def _audit_lockout(request: Request, actor: str, action: str, target_type: str, target_id: str,
                   detail: dict[str, object], now: datetime) -> None:
    with session_scope(db_url(request)) as session:
        audit(session, actor, action, target_type, target_id, detail, at=now)


@router.post("/logout", response_class=RedirectResponse)
def logout(request: Request) -> RedirectResponse:
    end_session(request, clock_of(request))
    return redirect("/login")


@router.post("/me/locale", response_class=RedirectResponse)
def set_locale(
    request: Request, locale: Annotated[str, Form()], back: Annotated[str, Form()] = "/"
) -> RedirectResponse:
    user = current_user(request)
    if locale in SUPPORTED:
        with session_scope(db_url(request)) as session:
            row = session.get(AppUser, user.id)
            if row is not None:
                row.locale = locale
                session.add(row)
    else:
        flash(request, "Unknown language.", "error")
    return redirect(safe_next(back))
