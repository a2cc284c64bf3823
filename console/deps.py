"""Request dependencies shared by the page routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Path, Request

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


# A row id as the database holds it (a signed 64-bit integer). Bounded where it comes in, in a path or a
# form, because a larger one made SQLite's driver raise OverflowError, a 500 instead of a refusal.
LARGEST_ROW_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=LARGEST_ROW_ID)]
FormRowId = Annotated[int, Form(ge=1, le=LARGEST_ROW_ID)]
