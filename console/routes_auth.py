"""Login, logout, the start page per role and the user's own language setting."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console import csrf
from console.auth import SESSION_USER, NotAuthenticated, authenticate, load_user
from console.deps import current_user, db_url
from console.i18n import SUPPORTED
from console.web import flash, redirect, render, safe_next
from store.db import session_scope
from store.models import AppUser

router = APIRouter(dependencies=[Depends(csrf.protect)])

HOME_BY_ROLE = {"agent": "/inbox", "supervisor": "/inbox", "ops": "/ops/journeys", "admin": "/admin/users"}


@router.get("/", response_class=RedirectResponse)
def home(request: Request) -> RedirectResponse:
    try:
        user = load_user(request)
    except NotAuthenticated:
        return redirect("/login")
    return redirect(HOME_BY_ROLE.get(user.role, "/login"))


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", None, next=safe_next(next), error=False, username="")


@router.post("/login", response_model=None)
def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=512)] = "/",
) -> HTMLResponse | RedirectResponse:
    user = authenticate(username.strip(), password, db_url(request))
    if user is None:
        return render(request, "login.html", None, status_code=401, next=safe_next(next), error=True,
                      username=username)
    # A fresh session (and CSRF token) at login, so nothing chosen before login carries over.
    request.session.clear()
    request.session[SESSION_USER] = user.id
    csrf.rotate(request)
    target = safe_next(next)
    return redirect(target if target != "/" else HOME_BY_ROLE.get(user.role, "/"))


@router.post("/logout", response_class=RedirectResponse)
def logout(request: Request) -> RedirectResponse:
    request.session.clear()
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
