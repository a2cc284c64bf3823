"""A console form (or page address) the app cannot read answers the page again, with a message in the
user's language per field at fault, instead of FastAPI's JSON.

One place for every page route: a POST whose fields fail validation (missing, too long, not a
number, a value the route refuses with a 422) is sent back, 303, to the page the form was on, with a
flash per field; a page (GET) whose parameters fail shows the error page, 422, with the same
messages. The API (/api/) and the providers' webhooks (/hooks/) keep FastAPI's JSON, which names
the field for a program.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response
from starlette.routing import Match

from console.labels import FORM_FIELDS, humanised
from console.limits import PageRefusal
from console.web import flash, redirect, safe_next

MACHINE_PREFIXES = ("/api/", "/hooks/")
# Pydantic's error types → the message a person reads; the rest say the value could not be used.
MESSAGES: dict[str, str] = {
    "missing": "Please fill in %(field)s.",
    "string_too_long": "%(field)s is too long: at most %(limit)s characters.",
    "too_long": "Too many %(field)s: at most %(limit)s.",
    "string_too_short": "Please fill in %(field)s.",
    # console.text_rules.check_form: a control character (a NUL, an escape…) in the field.
    "text_control": "%(field)s contains a character that cannot be typed (a control character): remove it.",
}
UNREADABLE = "%(field)s: this value cannot be used."


def for_people(request: Request) -> bool:
    """Whether a refusal of this request is read by a person on a console page."""
    return not request.url.path.startswith(MACHINE_PREFIXES)


def field_of(loc: Sequence[Any]) -> str:
    """The form field or parameter an error's location names (``["body", "name"]`` → ``name``)."""
    names = [str(part) for part in loc if not isinstance(part, int) and part not in ("body", "query", "path")]
    return names[0] if names else ""


def refused(request: Request, errors: Iterable[Mapping[str, Any]], render_page: PageRefusal) -> Response:
    """Flash one message per field at fault; back to the form's page, or the error page for a GET."""
    seen: set[str] = set()
    for error in errors:
        field = field_of(error.get("loc", ()))
        if field in seen:
            continue
        seen.add(field)
        kind = str(error.get("type", ""))
        ctx = error.get("ctx") or {}
        limit = ctx.get("max_length", ctx.get("max_items", ""))
        label = FORM_FIELDS.get(field)
        words = {"field": label} if label else {}
        params = {} if label else {"field": humanised(field)}
        flash(request, MESSAGES.get(kind, UNREADABLE), "error", words=words, limit=limit, **params)
    if request.method in ("GET", "HEAD"):
        return render_page(request, 422, None)
    return redirect(form_page(request))


def form_page(request: Request) -> str:
    """The page a form was posted from: the Referer when it is this site's, else the nearest page above."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc == request.url.netloc:
        return safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))
    path = request.url.path
    while path:
        if _is_page(request, path):
            return path
        path = path.rsplit("/", 1)[0]
    return "/"


def _is_page(request: Request, path: str) -> bool:
    scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
    for route in request.app.router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return True
    return False
