"""A console user's language is one the console has a catalogue for: ``create_user`` (the users page,
``journeys users add`` and the demo all create users through it) refuses any other, the page says so
and adds nobody, and the API refuses a customer's unknown language with 422. Before, the page stored
``zh-CN`` for ``locale=xx`` without a word, and ``create_user`` stored ``xx`` as given."""

from __future__ import annotations

import pytest
from sqlmodel import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from console.auth import UnknownLocale, create_user
from engine.cli import build_app
from store.db import session_scope
from store.models import AppUser, Customer
from tests.console.conftest import API_KEY, Seed, login
from tests.console.test_form_errors import set_locale


def named(url: str, name: str) -> AppUser | None:
    with session_scope(url) as s:
        return s.exec(select(AppUser).where(AppUser.username == name)).first()


@pytest.mark.parametrize("locale", ["xx", "zh", "EN", "zh-TW", ""])
def test_create_user_refuses_a_language_without_a_catalogue(db_url: str, locale: str) -> None:
    with session_scope(db_url) as s, pytest.raises(UnknownLocale, match="unknown language"):
        create_user(s, "newbie", "long-enough-1", "agent", locale=locale)
    assert named(db_url, "newbie") is None


@pytest.mark.parametrize(("admin_locale", "says"), [("en", "Unknown language."), ("zh-CN", "不支持的语言。")])
def test_the_users_page_refuses_it_and_adds_nobody(client: TestClient, seed: Seed, db_url: str,
                                                   admin_locale: str, says: str) -> None:
    set_locale(db_url, "adam", admin_locale)
    token = login(client, "adam")
    form = {"csrf_token": token, "username": "newbie", "password": "long-enough-1", "role": "agent"}
    answer = client.post("/admin/users", data={**form, "locale": "xx"}, follow_redirects=False)
    assert answer.status_code == 303
    assert says in client.get(answer.headers["location"]).text
    assert named(db_url, "newbie") is None
    client.post("/admin/users", data={**form, "locale": "en"})
    added = named(db_url, "newbie")
    assert added is not None and added.locale == "en"


def test_the_cli_refuses_it(db_url: str) -> None:
    result = CliRunner().invoke(build_app(), ["users", "add", "newbie", "--role", "agent", "--locale", "xx",
                                              "--password-stdin"], input="long-enough-1\n")
    assert result.exit_code != 0
    assert named(db_url, "newbie") is None


def test_the_api_refuses_a_customers_unknown_language(client: TestClient, seed: Seed, db_url: str) -> None:
    answer = client.put("/api/customers/C9", headers={"X-API-Key": API_KEY}, json={"name": "新客", "locale": "xx"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "locale"]
    with session_scope(db_url) as s:
        assert s.exec(select(Customer).where(Customer.external_id == "C9")).first() is None
