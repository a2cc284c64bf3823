"""Unsubscribe links when ``JOURNEYS_SECRET_KEY`` is not set (it is optional for the console, which then
makes a random session key): a customer opening any link gets the invalid-link page, never a server
error, and the configuration problem is logged once; no message goes out with a link nobody could check.

Through the console app ``journeys serve`` runs, over a real migrated SQLite store.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels import optout
from channels.optout import unsubscribe_url
from console.app import create_app
from engine.language.rendering import RenderError, render, signed_unsubscribe_link
from engine.language.template_context import sample_context
from engine.loop.receipts import handle_unsubscribe
from store.models import Customer
from tests.db_support import stored
from tests.loop.test_receipts import make_customer

SECRET = "test-only-unsubscribe-key"


@pytest.fixture
def no_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(optout.SECRET_ENV, raising=False)
    monkeypatch.setenv("JOURNEYS_DESK_EVERY", "0")
    # A fresh "logged once" flag: whichever test ran before, this one sees its own first time.
    monkeypatch.setattr(optout, "missing_secret_logged", type(optout.missing_secret_logged)())
    yield


@pytest.fixture
async def served(db_url: str, no_secret: None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(db_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://x.test") as client:
        yield client


def _path(link: str) -> str:
    return link[link.index("/hooks/"):]


async def test_every_link_is_the_invalid_page_and_the_problem_is_logged_once(
        db_url: str, monkeypatch: pytest.MonkeyPatch, served: httpx.AsyncClient,
        caplog: pytest.LogCaptureFixture) -> None:
    customer = make_customer(db_url)
    with monkeypatch.context() as signing:  # a link sent while a key was set, opened after it went
        signing.setenv(optout.SECRET_ENV, SECRET)
        real = _path(unsubscribe_url("C-1", "email"))

    caplog.set_level(logging.ERROR, logger="channels.optout")
    for path in ("/hooks/unsubscribe/garbage", real):
        for method in ("GET", "POST"):
            page = await served.request(method, path)
            assert page.status_code == 404, (method, path, page.status_code, page.text)
            assert "链接无效" in page.text and "This link is not valid" in page.text
            assert page.headers["content-type"].startswith("text/html")
    assert stored(db_url, Customer, customer).consent_email is True
    logged = [r.getMessage() for r in caplog.records if optout.SECRET_ENV in r.getMessage()]
    assert len(logged) == 1, logged
    assert "unsubscribe links can be neither signed nor checked" in logged[0]


def test_no_link_is_sent_without_a_key(db_url: str, no_secret: None) -> None:
    """The links the product sends: none is signed, so a message whose template needs one fails to
    render (naming the variable) rather than going out with a link that cannot work."""
    customer = stored(db_url, Customer, make_customer(db_url))
    assert signed_unsubscribe_link(customer, "email") is None
    with pytest.raises(RenderError, match="unsubscribe_url"):
        render("gold_value_added", "email", replace(sample_context(), unsubscribe_url=None))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300),
       method=st.sampled_from(["GET", "POST", "PUT"]), keyed=st.booleans())
def test_any_token_with_or_without_a_key_is_never_a_server_error(
        db_url: str, monkeypatch: pytest.MonkeyPatch, no_secret: None, token: str, method: str, keyed: bool) -> None:
    with monkeypatch.context() as env:
        if keyed:
            env.setenv(optout.SECRET_ENV, SECRET)
        status, page = handle_unsubscribe(method, token, db_url=db_url)
    assert status in (200, 404, 405), (status, page)
    assert status != 200 or keyed
