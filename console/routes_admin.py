"""Admin pages: users (create, deactivate, shift)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import col, select

from console import csrf
from console.auth import audit, create_user
from console.deps import db_url, user_with
from console.i18n import SUPPORTED
from console.web import flash, redirect, render
from store.db import session_scope
from store.models import ROLES, AppUser

router = APIRouter(dependencies=[Depends(csrf.protect)])


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request) -> HTMLResponse:
    user = user_with(request, "users")
    with session_scope(db_url(request)) as session:
        users = list(session.exec(select(AppUser).order_by(col(AppUser.username))).all())
    return render(request, "admin_users.html", user, users=users, roles=ROLES, locales=list(SUPPORTED))


@router.post("/admin/users", response_class=RedirectResponse)
def add_user(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form(max_length=16)],
    display_name: Annotated[str, Form(max_length=128)] = "",
    team: Annotated[str, Form(max_length=64)] = "",
    locale: Annotated[str, Form(max_length=10)] = "zh-CN",
) -> RedirectResponse:
    admin = user_with(request, "users")
    try:
        with session_scope(db_url(request)) as session:
            created = create_user(session, username.strip(), password, role, display_name=display_name.strip(),
                                  team=team.strip() or None, locale=locale if locale in SUPPORTED else "zh-CN")
            audit(session, admin.username, "user_add", "user", created.id or 0, {"role": role})
        flash(request, "User %(name)s added.", "ok", name=username.strip())
    except ValueError:
        flash(request, "The user could not be added: check the name (unique), role and password (8+ characters).",
              "error")
    return redirect("/admin/users")


@router.post("/admin/users/{user_id}/toggle", response_class=RedirectResponse)
def toggle(request: Request, user_id: int, what: Annotated[str, Form()]) -> RedirectResponse:
    admin = user_with(request, "users")
    if what not in ("active", "on_shift"):
        raise HTTPException(status_code=422, detail="what")
    with session_scope(db_url(request)) as session:
        row = session.get(AppUser, user_id)
        if row is None:
            raise HTTPException(status_code=404, detail="not_found")
        if row.id == admin.id and what == "active":
            flash(request, "You cannot deactivate yourself.", "error")
            return redirect("/admin/users")
        setattr(row, what, not getattr(row, what))
        session.add(row)
        audit(session, admin.username, f"user_{what}", "user", user_id, {what: getattr(row, what)})
    return redirect("/admin/users")
