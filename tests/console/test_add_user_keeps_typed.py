"""The add-user form refused on the server (a taken name, an unknown skill) comes back with what was typed in
it, all but the password: before, the page the refusal went back to had an empty form, and the admin typed
name, team, role, language and skills again to fix one field."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from tests.console.conftest import Seed, login

TYPED = {"username": "ann", "display_name": "安娜 <b>", "team": "claims", "role": "supervisor", "locale": "en",
         "password": "secret-typed-9", "skill": ["product:motor"]}


def form_of(page: str) -> str:
    return page.split('action="/admin/users" class="stack"', 1)[1].split("</form>", 1)[0]


@pytest.mark.parametrize("refusal", [{}, {"skill": ["product:motor", "licence:flying"]}],
                         ids=["taken name", "unknown skill"])
def test_a_refused_new_user_comes_back_with_what_was_typed(client: TestClient, seed: Seed,
                                                           refusal: dict[str, object]) -> None:
    token = login(client, "adam")
    answer = client.post("/admin/users", follow_redirects=False, data={"csrf_token": token, **TYPED, **refusal})
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/users"
    page = client.get("/admin/users").text
    assert 'class="flash error"' in page
    form = form_of(page)
    assert 'name="username" value="ann"' in form
    assert 'name="display_name" value="安娜 &lt;b&gt;"' in form
    assert 'name="team" value="claims"' in form
    assert re.search(r'<option value="supervisor" selected>', form)
    assert re.search(r'<option value="en" selected>', form)
    assert 'value="product:motor" checked' in form
    assert "secret-typed-9" not in page
    # Shown once: the page opened again has the empty form.
    assert 'name="username" value=""' in form_of(client.get("/admin/users").text)


def test_an_added_user_leaves_the_form_empty(client: TestClient, seed: Seed) -> None:
    token = login(client, "adam")
    client.post("/admin/users", data={"csrf_token": token, **TYPED, "username": "nina"})
    form = form_of(client.get("/admin/users").text)
    assert 'name="username" value=""' in form and " checked" not in form
