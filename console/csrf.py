"""CSRF protection: a random token per session, required on every unsafe request made with a session.

Forms carry it in the ``csrf_token`` field, scripts in the ``X-CSRF-Token`` header.
Requests authenticated by API key carry no cookie, so cross-site forgery does not
apply to them; ``console.api`` decides that before calling ``check``.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import HTTPException, Request

SESSION_KEY = "csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token(request: Request) -> str:
    """This session's token, created on first use."""
    value = request.session.get(SESSION_KEY)
    if not isinstance(value, str) or not value:
        value = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = value
    return value


def rotate(request: Request) -> str:
    value = secrets.token_urlsafe(32)
    request.session[SESSION_KEY] = value
    return value


async def presented_token(request: Request) -> str:
    header = request.headers.get(HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached on the request, so the endpoint still sees it
        value = form.get(FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def check(request: Request) -> None:
    """Raise 403 unless an unsafe request presents this session's token."""
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get(SESSION_KEY)
    presented = await presented_token(request)
    if not isinstance(expected, str) or not expected or not presented or not hmac.compare_digest(
        expected.encode(), presented.encode()
    ):
        raise HTTPException(status_code=403, detail="csrf")


async def protect(request: Request) -> None:
    """Router dependency for the HTML pages: every form post must carry the token."""
    await check(request)
