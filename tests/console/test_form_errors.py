"""A console form the app cannot read comes back to its page with a message in the user's language,
never FastAPI's JSON: for every page route that takes a form, posted with each field missing and each
field over its length, and for the cases reviewers found (empty seed-list name, empty template, a
reassignment without its agent, an over-long WeChat openid, a 300-character user name)."""

from __future__ import annotations

from typing import Any

import fastapi.routing
import pytest
from annotated_types import MaxLen
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.testclient import TestClient

from console.i18n import Translator
from console.labels import FORM_FIELDS
from tests.console.conftest import Seed, login, update_user

MACHINE = ("/api/", "/hooks/", "/static")


def form_routes(app: FastAPI) -> list[APIRoute]:
    """Every page route that reads a form (the API and the webhooks answer programs, in JSON)."""
    found = []
    for entry in fastapi.routing.iter_route_contexts(app.routes):
        route = getattr(entry, "original_route", entry)
        if isinstance(route, APIRoute) and not entry.path.startswith(MACHINE) and route.dependant.body_params:
            found.append(route)
    return found


def fields_of(route: APIRoute) -> list[tuple[str, bool, int | None]]:
    """(name, required, max length) of each form field but the CSRF token."""
    out = []
    for param in route.dependant.body_params:
        limits = [m.max_length for m in param.field_info.metadata if isinstance(m, MaxLen)]
        if param.alias != "csrf_token":
            out.append((param.alias, param.field_info.is_required(), limits[0] if limits else None))
    return out


def concrete(path: str, seed: Seed) -> str:
    return path.format(task_id=seed.tasks["ann_first"], user_id=seed.users["ann"], index=0, version_id=1)


def set_locale(db_url: str, name: str, locale: str) -> None:
    update_user(db_url, name, locale=locale)


def refused_shows(client: TestClient, response: Any, text: str) -> None:
    """A refused form: 303 to a page of this site that, opened, shows ``text`` as an error message."""
    assert response.status_code == 303, (response.status_code, response.text[:300])
    assert "json" not in response.headers.get("content-type", "")
    target = response.headers["location"]
    assert target.startswith("/") and not target.startswith("//")
    page = client.get(target)
    assert "json" not in page.headers.get("content-type", "")
    errors = page.text.split('class="flash error"')[1:]
    assert any(text in e.split("</p>")[0] for e in errors), (target, text, errors)


def test_every_page_form_with_a_missing_or_over_long_field_comes_back_with_a_message(
        app: FastAPI, client: TestClient, seed: Seed) -> None:
    client.headers["Accept-Language"] = "en"  # the login page follows the browser
    token = login(client, "adam")  # validation runs before rights: any signed-in user meets it first
    t = Translator("en")
    routes = form_routes(app)
    assert len(routes) >= 10, [r.path for r in routes]  # the walk found the console's forms
    checked = 0
    for route in routes:
        fields = fields_of(route)
        valid = {name: "1" for name, _, _ in fields}
        for name, required, limit in fields:
            assert name in FORM_FIELDS, f"{route.path}: form field {name} has no words in console.labels"
            label = t(FORM_FIELDS[name])
            cases = []
            if required:
                cases.append(({k: v for k, v in valid.items() if k != name}, f"Please fill in {label}."))
            if limit is not None and name not in ("skill", "task_ids"):
                cases.append(({**valid, name: "x" * (limit + 1)}, f"{label} is too long"))
            for form, message in cases:
                for method in route.methods:
                    answer = client.request(method, concrete(route.path, seed), data={"csrf_token": token, **form},
                                            follow_redirects=False)
                    refused_shows(client, answer, message)
                    checked += 1
    assert checked >= 15


@pytest.mark.parametrize(("user", "path", "form", "zh", "back"), [
    ("olga", "/ops/test-send/recipients", {"name": "", "phone": "13900001111"}, "请填写姓名。", "/ops/test-send"),
    ("olga", "/ops/test-send/recipients", {"name": "QA", "wechat_openid": "o" * 65},
     "微信 openid过长：最多 64 个字符。", "/ops/test-send"),
    ("olga", "/ops/test-send", {"template": "", "channel": "sms", "locale": "zh-CN"}, "请填写模板。",
     "/ops/test-send"),
    ("sue", "/tasks/{task_id}/reassign", {"back": "/supervisor"}, "请填写坐席。", "/tasks/{task_id}"),
    ("sue", "/supervisor/assign", {"back": "/supervisor"}, "请填写坐席。", "/supervisor"),
    ("adam", "/admin/users", {"username": "u" * 300, "password": "long-enough-1", "role": "agent"},
     "用户名过长：最多 64 个字符。", "/admin/users"),
])
def test_the_reviewers_forms_come_back_in_chinese(client: TestClient, db_url: str, seed: Seed, user: str,
                                                  path: str, form: dict[str, str], zh: str, back: str) -> None:
    set_locale(db_url, user, "zh-CN")
    token = login(client, user)
    answer = client.post(concrete(path, seed), data={"csrf_token": token, **form}, follow_redirects=False)
    assert answer.headers["location"] == concrete(back, seed)
    refused_shows(client, answer, zh)


def test_the_form_comes_back_to_the_page_it_was_posted_from(client: TestClient, seed: Seed) -> None:
    token = login(client, "sue")
    answer = client.post(f"/tasks/{seed.tasks['ann_first']}/reassign", data={"csrf_token": token},
                         headers={"Referer": "http://testserver/supervisor?queue=callbacks"}, follow_redirects=False)
    assert answer.headers["location"] == "/supervisor?queue=callbacks"
    elsewhere = client.post(f"/tasks/{seed.tasks['ann_first']}/reassign", data={"csrf_token": token},
                            headers={"Referer": "https://evil.example/x"}, follow_redirects=False)
    assert elsewhere.headers["location"] == f"/tasks/{seed.tasks['ann_first']}"


def test_a_page_address_it_cannot_read_shows_the_error_page_with_the_field(client: TestClient) -> None:
    login(client, "ann")
    page = client.get("/inbox", params={"customer": "x" * 65})
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert "Customer is too long: at most 64 characters." in page.text


def test_the_api_keeps_fastapis_json_naming_the_field(client: TestClient) -> None:
    from tests.console.conftest import API_KEY

    answer = client.put("/api/customers/C9", headers={"X-API-Key": API_KEY}, json={"name": "x" * 129})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "name"]
