"""A user name is told apart ignoring case (console.usernames), and so is it at login: 'Ann' typed on a phone
(whose keyboard capitalises the first letter) is ann, and her failures are counted whatever the spelling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlmodel import select
from starlette.testclient import TestClient

from console.app import create_app
from store.db import session_scope
from store.models import AppUser
from tests.console.conftest import PASSWORD, Seed, csrf_of


@pytest.fixture
def c(db_url: str, console_env: None, seed: Seed) -> Iterator[TestClient]:
    app: FastAPI = create_app(db_url)
    with TestClient(app, base_url="http://testserver") as client:
        yield client


def _login(c: TestClient, username: str, password: str) -> Any:
    token = csrf_of(c.get("/login", headers={"Accept-Language": "en"}).text)
    return c.post("/login", data={"username": username, "password": password, "csrf_token": token},
                  headers={"Accept-Language": "en"}, follow_redirects=False)


def test_a_name_typed_with_capitals_logs_the_user_in(c: TestClient) -> None:
    answer = _login(c, " Ann", PASSWORD)
    assert (answer.status_code, answer.headers["location"]) == (303, "/inbox")
    assert "Ann" in c.get("/inbox").text


def test_guesses_under_other_spellings_of_a_name_count_against_that_account(c: TestClient, db_url: str) -> None:
    statuses = [_login(c, name, "wrong-password").status_code for name in ("BOB", "Bob", "bOb ", "BOB", "Bob")]
    assert statuses == [401, 401, 401, 401, 429]
    with session_scope(db_url) as s:
        bob = s.exec(select(AppUser).where(AppUser.username == "bob")).one()
        assert bob.locked_until is not None
    assert _login(c, "bob", PASSWORD).status_code == 429  # locked: even the right password is not checked


def test_the_login_field_asks_the_phone_not_to_capitalise(c: TestClient) -> None:
    page = c.get("/login").text
    assert 'autocapitalize="none"' in page
