"""The test-send page: the seed list of internal recipients, and any template sent to it (``console.seed_send``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from channels.template_files import LOCALES
from console import csrf, text_rules
from console.auth import CurrentUser
from console.deps import db_url, user_with
from console.i18n import Translator
from console.seed_send import (
    BATCH_DIGITS,
    KEY_DIGITS,
    SEED_CHANNELS,
    SeedListError,
    TestSendResult,
    add_recipient,
    new_batch,
    remove_recipient,
    seed_list,
    send_test,
    sent_batch,
    templates,
)
from console.web import flash, redirect, render
from store.db import session_scope

# Every form: its CSRF token first, then no control character in any field or query parameter
# (console.text_rules).
router = APIRouter(dependencies=[Depends(csrf.protect), Depends(text_rules.check_request)])
PAGE = "/ops/test-send"


def _page(request: Request, user: CurrentUser, *, results: list[TestSendResult] | None = None,
          error: str | None = None, form: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    with session_scope(db_url(request)) as session:
        recipients = [{**r.masked(), "key": r.key(_secret(request))} for r in seed_list(session)]
    return render(request, "test_send.html", user, status_code=status_code, recipients=recipients,
                  templates=templates(), channels=SEED_CHANNELS, locales=LOCALES, results=results, error=error,
                  form=form or {})


def _secret(request: Request) -> str:
    return str(request.app.state.settings.secret_key)


@router.get(PAGE, response_class=HTMLResponse)
def test_send_page(request: Request, sent: Annotated[str, Query(max_length=BATCH_DIGITS)] = "") -> HTMLResponse:
    user = user_with(request, "journeys")
    if sent:
        with session_scope(db_url(request)) as session:
            found = sent_batch(session, user.username, sent)
        if found is not None:
            return _page(request, user, results=found[1], form=found[0])
    return _page(request, user)


@router.post(PAGE, response_model=None)
def test_send(request: Request, template: Annotated[str, Form(max_length=64)],
              channel: Annotated[str, Form(max_length=16)], locale: Annotated[str, Form(max_length=10)]
              ) -> HTMLResponse | RedirectResponse:
    user = user_with(request, "journeys")
    form = {"template": template, "channel": channel, "locale": locale}
    batch = new_batch()
    try:
        with session_scope(db_url(request)) as session:
            send_test(session, user.username, template, channel, locale, batch=batch)
    except SeedListError as exc:
        return _page(request, user, error=exc.shown(Translator(user.locale)), form=form, status_code=422)
    # The results on a page of their own: reloading it, or coming back to it, does not send again.
    return redirect(f"{PAGE}?sent={batch}")


@router.post(f"{PAGE}/recipients", response_class=RedirectResponse)
def add(request: Request, name: Annotated[str, Form(max_length=64)],
        phone: Annotated[str, Form(max_length=32)] = "", email: Annotated[str, Form(max_length=254)] = "",
        wechat_openid: Annotated[str, Form(max_length=64)] = "") -> RedirectResponse:
    user = user_with(request, "journeys")
    try:
        with session_scope(db_url(request)) as session:
            add_recipient(session, user.username, name, phone, email, wechat_openid)
        flash(request, "Recipient added to the seed list.", "ok")
    except SeedListError as exc:
        flash(request, "The recipient could not be added: %(why)s", "error", why=exc.shown(Translator(user.locale)))
    return redirect(PAGE)


@router.post(f"{PAGE}/recipients/{{index}}/remove", response_class=RedirectResponse)
def remove(request: Request, index: int, key: Annotated[str, Form(max_length=KEY_DIGITS)] = ""
           ) -> RedirectResponse:
    # ``key`` is optional here only so that the rights are checked before the form: without it nobody is removed.
    user = user_with(request, "journeys")
    try:
        with session_scope(db_url(request)) as session:
            remove_recipient(session, user.username, index, key, _secret(request))
        flash(request, "Recipient removed from the seed list.", "ok")
    except SeedListError:
        flash(request, "No such recipient.", "error")
    return redirect(PAGE)
