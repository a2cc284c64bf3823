"""Request dependencies shared by the page routers."""

from __future__ import annotations

from fastapi import Request

from console.auth import CurrentUser, load_user, require


def db_url(request: Request) -> str | None:
    url: str | None = request.app.state.settings.database_url
    return url


def current_user(request: Request) -> CurrentUser:
    return load_user(request)


def user_with(request: Request, right: str) -> CurrentUser:
    user = load_user(request)
    require(user, right)
    return user
