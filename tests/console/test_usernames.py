"""User names created on /admin/users: a strict character set and length, unique whatever the case, a
message on the page when refused; and what is created can log in as typed. Before, ``ADMIN1`` beside
``admin1``, ``a b`` and ``<img src=x onerror=alert(1)>`` were all created."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select
from starlette.testclient import TestClient

from console import usernames
from store.db import session_scope
from store.models import AppUser
from tests.console.conftest import PASSWORD, Seed, csrf_of, login

SAFE = set(string.ascii_lowercase + string.digits + "._-")


def names(db_url: str) -> list[str]:
    with session_scope(db_url) as s:
        return list(s.exec(select(AppUser.username)).all())


def add(client: TestClient, token: str, username: str) -> tuple[int, str]:
    answer = client.post("/admin/users", follow_redirects=False, data={
        "csrf_token": token, "username": username, "password": PASSWORD, "role": "agent", "team": "a"})
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/users"
    return answer.status_code, client.get("/admin/users").text


@pytest.mark.parametrize("bad", ["ADAM", "Adam", "a b", "<img src=x onerror=alert(1)>", "x" * 300, "x" * 33, "a",
                                 "-ann", "ann\u00e9", "ann\t", "Zoe", "" + "ann" + "\u200b"])
def test_a_name_outside_the_rule_is_refused_with_a_message_on_the_page(client: TestClient, db_url: str,
                                                                       bad: str) -> None:
    token = login(client, "adam")
    before = names(db_url)
    _, page = add(client, token, bad)
    assert names(db_url) == before
    error = page.split('class="flash error"', 1)[1].split("</p>", 1)[0]
    assert "username" in error.lower() or "Username" in error
    assert "<img" not in page.split("<main", 1)[1].replace("&lt;img", "")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wanted=st.one_of(st.from_regex(usernames.PATTERN, fullmatch=True), st.text(max_size=40),
                        st.sampled_from(["ann", "ANN", "bob", "Sue", "new.agent", "new.AGENT"])))
def test_every_name_created_is_plain_unique_ignoring_case_and_logs_in_as_typed(
        app: object, client: TestClient, db_url: str, seed: Seed, wanted: str) -> None:
    client.cookies.clear()
    token = login(client, "adam")
    before = names(db_url)
    add(client, token, wanted)
    after = names(db_url)
    created = sorted(set(after) - set(before))
    folded = [n.lower() for n in after]
    assert len(folded) == len(set(folded))  # no two names differ only in case
    if created:
        assert created == [wanted.strip()]
        name = created[0]
        assert set(name) <= SAFE and 2 <= len(name) <= usernames.MAX_LENGTH
        fresh = TestClient(client.app, base_url="http://testserver")
        form = csrf_of(fresh.get("/login").text)
        answer = fresh.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": form},
                            follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] != "/login"
    else:
        assert wanted.strip().lower() in {n.lower() for n in before} or not usernames.PATTERN.fullmatch(wanted.strip())
