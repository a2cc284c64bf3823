"""One rule per kind of text field (console.text_rules), for every API body and every console form:
ids are printable ASCII without spaces (no full-width digits), names are one visible line (white
space alone, invisible characters alone and control characters refused), free text may run over
lines but holds no other control character. A refused request is a 422 (API) or the form back with a
message (pages), and stores nothing."""

from __future__ import annotations

from typing import Any

import fastapi.routing
import pytest
from fastapi.routing import APIRoute
from sqlmodel import func, select
from starlette.testclient import TestClient

from console.text_rules import blank, id_problem, name_problem, text_problem
from store.db import session_scope
from store.models import AgentTask, AppUser, Customer, Event, Policy
from tests.console.conftest import API_KEY, Seed, login
from tests.console.test_form_errors import MACHINE, refused_shows, set_locale

KEY = {"X-API-Key": API_KEY}


def test_the_rules_by_kind() -> None:
    assert id_problem("SEED-CUS000000001") is None and id_problem("a:b/c_9") is None
    for wrong in ("１２", "C 1", " C1", "C1\x00", "", "客户1"):
        assert id_problem(wrong), wrong
    assert name_problem("张三丰") is None and name_problem("O'Brien-Smith") is None
    for wrong in ("", "\u200b", "\u3000", "a\x00b", "a\nb", "a\u2028b", "x\x1b[31m"):
        assert name_problem(wrong), repr(wrong)
    assert text_problem("line one\nline two\r\n\tindented") is None
    assert text_problem("a\x00") == "contains a control character (U+0000 at position 2)"
    assert blank(" \t\u3000\u200b\ufeff") and not blank(" x ")


def counts(url: str) -> tuple[int, ...]:
    with session_scope(url) as s:
        return tuple(int(s.exec(select(func.count()).select_from(m)).one()) for m in (Customer, Event, Policy))


@pytest.mark.parametrize(("method", "path", "body", "loc"), [
    ("PUT", "/api/customers/N1", {"name": "   "}, ["body", "name"]),
    ("PUT", "/api/customers/N1", {"name": "\u3000\u200b"}, ["body", "name"]),
    ("PUT", "/api/customers/N1", {"name": "a\u0000b"}, ["body", "name"]),
    ("PUT", "/api/customers/N1", {"name": "Li\nLei"}, ["body", "name"]),
    ("PUT", "/api/customers/N1", {"name": "ok", "branch": "x\u0007y"}, ["body", "branch"]),
    ("PUT", "/api/customers/N1", {"name": "ok", "branch": "  "}, ["body", "branch"]),
    ("PUT", "/api/customers/N1", {"name": "ok", "consent_source": "\u0000"}, ["body", "consent_source"]),
    ("PUT", "/api/customers/N1", {"name": "ok", "email": "a\u0000@example.com"}, ["body", "email"]),
    ("PUT", "/api/customers/N1", {"name": "ok", "push_registration_id": "１２３"}, ["body", "push_registration_id"]),
    ("PUT", "/api/customers/N1", {"name": "ok", "advisor": "ann "}, ["body", "advisor"]),
    ("PUT", "/api/customers/N1", {"name": "ok", "attributes": {"note": "a\u0000"}}, ["body", "attributes"]),
    ("PUT", "/api/customers/N1", {"name": "ok", "attributes": {"k\u0000": 1}}, ["body", "attributes"]),
    ("PUT", "/api/customers/N1", {"name": "ok", "attributes": {"k": [{"deep": "\u001b"}]}}, ["body", "attributes"]),
    ("PUT", "/api/customers/%EF%BC%91%EF%BC%92", {"name": "ok"}, ["path", "external_id"]),
    ("PUT", "/api/customers/%20%20", {"name": "ok"}, ["path", "external_id"]),
    ("PUT", "/api/customers/a%00b", {"name": "ok"}, ["path", "external_id"]),
    ("POST", "/api/events", {"event_id": "  ", "type": "survey.answered", "customer_id": "C1",
                             "data": {"survey": "nps", "nps": 4}}, ["body", "event_id"]),
    ("POST", "/api/events", {"event_id": "e\u0000", "type": "survey.answered", "customer_id": "C1",
                             "data": {"survey": "nps", "nps": 4}}, ["body", "event_id"]),
    ("POST", "/api/events", {"event_id": "e1", "type": "survey.answered", "customer_id": "Ｃ1",
                             "data": {"survey": "nps", "nps": 4}}, ["body", "customer_id"]),
    ("POST", "/api/events", {"event_id": "e1", "type": "survey.answered", "customer_id": "C1",
                             "data": {"survey": "nps\u0000", "nps": 4}}, ["body", "data"]),
    ("PUT", "/api/policies/P%EF%BC%92", {"customer_external_id": "C1", "product_line": "health",
                                         "annual_premium": 1, "start_date": "2026-01-01",
                                         "expiry_date": "2027-01-01"}, ["path", "external_id"]),
    ("PUT", "/api/policies/P2", {"customer_external_id": "Ｃ1", "product_line": "health", "annual_premium": 1,
                                 "start_date": "2026-01-01", "expiry_date": "2027-01-01"},
     ["body", "customer_external_id"]),
    ("PUT", "/api/claims/K1", {"customer_external_id": "C1", "policy_external_id": "P 1",
                               "filed_at": "2026-01-01T00:00:00+08:00", "amount": 1}, ["body", "policy_external_id"]),
])
def test_api_refuses_by_field_kind_and_stores_nothing(client: TestClient, seed: Seed, db_url: str, method: str,
                                                      path: str, body: dict[str, Any], loc: list[str]) -> None:
    before = counts(db_url)
    answer = client.request(method, path, json=body, headers=KEY)
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    assert [e["loc"][:2] for e in errors] == [loc], errors
    assert all(isinstance(e["msg"], str) and e["msg"] for e in errors)
    assert counts(db_url) == before


def test_task_notes_are_free_text(client: TestClient, seed: Seed, db_url: str) -> None:
    token = login(client, "ann")
    task = seed.tasks["ann_first"]
    headers = {"X-CSRF-Token": token}
    assert client.post(f"/api/tasks/{task}/claim", headers=headers).status_code == 200
    refused = client.post(f"/api/tasks/{task}/complete", headers=headers,
                          json={"outcome": "reached", "notes": "called\u0000"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "notes"]
    with session_scope(db_url) as s:
        assert s.get(AgentTask, task).status == "claimed"  # type: ignore[union-attr]
    done = client.post(f"/api/tasks/{task}/complete", headers=headers,
                       json={"outcome": "reached", "notes": "line one\nline two\ttabbed"})
    assert done.status_code == 200, done.text


def test_api_names_are_stored_without_surrounding_space(client: TestClient, seed: Seed, db_url: str) -> None:
    answer = client.put("/api/customers/N2", headers=KEY, json={"name": "\u3000 Li Lei  ", "branch": " 上海 "})
    assert answer.status_code == 201, answer.text
    with session_scope(db_url) as s:
        row = s.exec(select(Customer).where(Customer.external_id == "N2")).one()
        assert (row.name, row.branch) == ("Li Lei", "上海")
    # An advisor may still be cleared with an empty name.
    assert client.put("/api/customers/N2", headers=KEY, json={"advisor": ""}).status_code == 200


def users(url: str) -> int:
    with session_scope(url) as s:
        return int(s.exec(select(func.count()).select_from(AppUser)).one())


@pytest.mark.parametrize(("locale", "message"), [
    ("en", "Display name contains a character that cannot be typed (a control character): remove it."),
    ("zh-CN", "显示名称含有无法输入的字符（控制字符），请删除后重试。"),
])
def test_a_form_field_with_a_control_character_comes_back_with_a_message(
        client: TestClient, seed: Seed, db_url: str, locale: str, message: str) -> None:
    set_locale(db_url, "adam", locale)
    token = login(client, "adam")
    before = users(db_url)
    answer = client.post("/admin/users", follow_redirects=False, data={
        "csrf_token": token, "username": "newbie", "password": "long-enough-1", "role": "agent",
        "display_name": "New\x00bie"})
    refused_shows(client, answer, message)
    assert users(db_url) == before


def test_a_seed_list_name_of_invisible_characters_is_refused(client: TestClient, seed: Seed) -> None:
    token = login(client, "olga")
    answer = client.post("/ops/test-send/recipients", follow_redirects=False,
                         data={"csrf_token": token, "name": "\u200b\u3000", "phone": "13900001111"})
    refused_shows(client, answer, "Please fill in Name.")
    assert "13900001111" not in client.get("/ops/test-send").text


@pytest.mark.parametrize(("user", "address", "field"), [
    ("ann", "/inbox?customer=%00", "Customer"),
    ("ann", "/inbox?queue=C1%1B", "Queue"),
    ("sue", "/supervisor?queue=%00", "Queue"),
    ("adam", "/admin/audit?actor=%00", "User"),
    ("olga", "/ops/explain?customer=%00&at=2026-12-01", "Customer"),
])
def test_a_page_address_with_a_control_character_shows_the_error_page(
        client: TestClient, seed: Seed, user: str, address: str, field: str) -> None:
    """On PostgreSQL these were 500s: it refuses a NUL among a query's parameters."""
    login(client, user)
    page = client.get(address)
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert f"{field} contains a character that cannot be typed (a control character)" in page.text


def test_the_api_refuses_a_query_with_a_control_character_after_the_key(client: TestClient, seed: Seed) -> None:
    assert client.get("/api/tasks?scope=all&queue=%00").status_code == 401  # no key: nothing but 401
    answer = client.get("/api/tasks?scope=all&queue=%00", headers=KEY)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["query", "queue"]
    token = login(client, "ann")
    mine = client.get("/api/tasks?queue=a%07", headers={"X-CSRF-Token": token})
    assert mine.status_code == 422 and mine.json()["detail"][0]["loc"] == ["query", "queue"]
    assert client.get("/api/tasks?queue=callbacks", headers=KEY).status_code == 200


def test_every_page_query_parameter_has_words_in_both_languages(app: Any) -> None:
    """A page address the app cannot read names the parameter at fault: in words, never its code (the
    Chinese inbox said 'page：此值无法使用。' and 'tier过长'; a task's page at /tasks/abc said
    'task id：此值无法使用。', the address's own parts having no words)."""
    from console.i18n import catalog_messages
    from console.labels import FORM_FIELDS
    from tests.console.test_form_errors import form_routes

    routes = [entry for entry in fastapi.routing.iter_route_contexts(app.routes)
              if isinstance(getattr(entry, "original_route", entry), APIRoute) and not entry.path.startswith(MACHINE)]
    names = {p.alias for e in routes for p in (getattr(e, "original_route", e).dependant.query_params
                                                  + getattr(e, "original_route", e).dependant.path_params)}
    assert form_routes(app)  # the same walk as the forms' check
    assert {"page", "tier", "queue", "customer", "task_id", "version_id"} <= names
    assert sorted(names - set(FORM_FIELDS)) == []
    for locale in ("zh-CN", "en"):
        catalogue = catalog_messages(locale)
        assert [n for n in names if not catalogue.get(FORM_FIELDS[n])] == [], locale


def test_the_chinese_inbox_names_the_parameter_in_words(client: TestClient, seed: Seed) -> None:
    login(client, "bob")  # zh-CN
    page = client.get("/inbox", params={"page": "-1", "tier": "x" * 20})
    assert page.status_code == 422
    assert "页码：此值无法使用。" in page.text and "等级过长：最多 16 个字符。" in page.text


@pytest.mark.parametrize(("address", "words"), [("/tasks/abc", "任务编号"), ("/ops/review/abc", "版本编号"),
                                                ("/tasks/0", "任务编号")])
def test_an_address_part_the_page_cannot_use_is_named_in_words(client: TestClient, db_url: str, seed: Seed,
                                                                address: str, words: str) -> None:
    set_locale(db_url, "olga", "zh-CN")
    login(client, "olga")
    page = client.get(address)
    assert page.status_code == 422 and f"{words}：此值无法使用。" in page.text
