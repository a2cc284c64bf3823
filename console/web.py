"""Rendering pages: one Jinja2 environment, the translator of the signed-in user, flash messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console import csrf
from console.auth import CurrentUser
from console.i18n import Translator, normalise
from console.journey_names import journey_names, localised
from console.template_names import template_description

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
FLASH = "flash"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def request_locale(request: Request, user: CurrentUser | None) -> str:
    if user is not None:
        return normalise(user.locale)
    asked = request.query_params.get("lang") or request.headers.get("accept-language", "").split(",")[0].split(";")[0]
    return normalise(asked.strip() or None)


def flash(request: Request, message: str, level: str = "info", *, words: dict[str, str] | None = None,
          **params: Any) -> None:
    """Queue a message for the next page; stored as its msgid and translated when shown.

    ``words`` are parameters that are msgids themselves (a field's label), translated with it.
    """
    items = list(request.session.get(FLASH, []))
    items.append({"msg": message, "level": level, "params": params, "words": words or {}})
    request.session[FLASH] = items[-5:]


def render(request: Request, name: str, user: CurrentUser | None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    t = Translator(request_locale(request, user))
    flashes = [
        {"level": f.get("level", "info"),
         "text": t(f["msg"], **f.get("params", {}), **{k: t(v) for k, v in f.get("words", {}).items()})}
        for f in request.session.pop(FLASH, [])
        if isinstance(f, dict) and "msg" in f
    ]
    names: dict[str, str] = {}

    def journey_name(journey_id: str) -> str:
        # Read once per page, and only by pages that show a journey.
        if not names:
            names.update(journey_names(request.app.state.settings.database_url) or {"": ""})
        if journey_id not in names and ":" in journey_id:
            # A reviewed template or setting ("template:<name>"): the kind is shown beside it already.
            kind, _, name = journey_id.partition(":")
            if kind == "template":
                return template_name(name)
            return t.label("setting", name) if kind == "setting" else name
        return localised(names.get(journey_id, journey_id), t.locale)

    def template_name(name: str) -> str:
        """A template folder by its ``meta.yaml`` description in the reader's language, else its code."""
        return localised(template_description(name) or name, t.locale)

    html = _env.get_template(name).render(
        request=request, user=user, _=t, t=t, locale=t.locale, csrf_token=csrf.token(request),
        flashes=flashes, path=request.url.path, journey_name=journey_name, template_name=template_name,
        **context,
    )
    # Text stored before the API refused half surrogate pairs (store.standard_json) cannot be UTF-8:
    # shown as "?", so the page still opens.
    body = html.encode("utf-8", "replace")
    # Pages show customer data: keep them out of shared caches and the browser's history cache.
    return HTMLResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(target: str | None) -> str:
    """Only same-site paths, so a crafted login link cannot send the user elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
