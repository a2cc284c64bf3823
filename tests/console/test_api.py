"""REST API: API keys and who they may act for, validated events (422 naming the field), idempotent
event ids, customers, tasks, and an OpenAPI that documents every status code and body."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from sqlmodel import func, select
from starlette.testclient import TestClient

from console.config import parse_api_keys
from store.db import session_scope
from store.models import AgentTask, AppUser, AuditLog, Customer, Event
from tests.console.conftest import API_KEY, Seed, login

# API_KEY is configured in the old bare form (tests/console/conftest.py): a system key that acts for nobody.
KEY = {"X-API-Key": API_KEY}
DESK_KEY = "desk-key-for-team-a-0123456789"  # a phone system that may act for the agents of team a
DESK_B_KEY = "desk-key-for-team-b-0123456789"  # configured by its digest only
ANN_KEY = "ann-own-key-0123456789"  # agent ann's own key
MISNAMED_KEY = "sue-as-agent-key-0123456789"  # says sue is an agent; she is a supervisor
DESK = {"X-API-Key": DESK_KEY}
ANN = {"X-API-Key": ANN_KEY}


@pytest.fixture
def console_env(console_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The conftest's two old-form keys plus keys in the NAME:ROLE:KEY form."""
    desk_b_digest = hashlib.sha256(DESK_B_KEY.encode()).hexdigest()
    monkeypatch.setenv("JOURNEYS_API_KEYS", ", ".join([
        "other-key", API_KEY, f"phones:desk=a:{DESK_KEY}", f"phones-b:desk=b:sha256:{desk_b_digest}",
        f"ann:agent:{ANN_KEY}", f"sue:agent:{MISNAMED_KEY}", "crm:system:crm-key-0123456789",
    ]))


def event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"event_id": "ev-1", "type": "survey.answered", "customer_id": "C1",
                            "occurred_at": "2026-11-22T08:00:00+08:00", "data": {"survey": "nps", "nps": 4}}
    body.update(overrides)
    return body


def event_count(url: str) -> int:
    with session_scope(url) as s:
        return int(s.exec(select(func.count()).select_from(Event)).one())


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}, {"X-API-Key": API_KEY + "x"}])
def test_bad_or_missing_key_is_401(client: TestClient, headers: dict[str, str], db_url: str) -> None:
    assert client.post("/api/events", json=event(), headers=headers).status_code == 401
    # Even a malformed body is 401 first: nothing about the API is revealed without a key.
    assert client.post("/api/events", json={"nonsense": 1}, headers=headers).status_code == 401
    assert client.get("/api/customers/C1", headers=headers).status_code == 401
    assert client.get("/api/tasks", headers=headers).status_code == 401
    assert event_count(db_url) == 0


def test_every_configured_key_works(client: TestClient) -> None:
    assert client.post("/api/events", json=event(event_id="a"), headers={"X-API-Key": "other-key"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (event(event_id=None), "event_id"),
        (event(type="survey.typo"), "type"),
        (event(occurred_at="yesterday"), "occurred_at"),
        (event(occurred_at="2026-11-22T08:00:00"), "occurred_at"),  # no time zone
        (event(data={"nps": "four"}), "data"),
        (event(data=["not", "an", "object"]), "data"),
        (event(customer_id=""), "customer_id"),
        (event(extra_field=1), "extra_field"),
        (event(customer_id="NOBODY"), "customer_id"),
        # Outside the years the product takes: a year-1 event once failed every later plan.
        (event(occurred_at="0001-01-01T00:00:00+00:00"), "occurred_at"),
        (event(occurred_at="9999-12-31T23:59:59+14:00"), "occurred_at"),
        (event(occurred_at="1899-12-31T23:59:59+08:00"), "occurred_at"),
        (event(type="policy.premium_paid", data={"policy_id": "P1", "amount": 1.0, "due_date": "0001-01-01"}),
         "due_date"),
    ],
)
def test_malformed_event_is_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str,
                                                  db_url: str) -> None:
    response = client.post("/api/events", json=body, headers=KEY)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert any(field in [str(part) for part in err["loc"]] for err in detail), detail
    assert event_count(db_url) == 0


def test_repeated_event_id_creates_nothing_new(client: TestClient, db_url: str) -> None:
    first = client.post("/api/events", json=event(), headers=KEY)
    assert first.status_code == 201 and first.json()["created"] is True
    with session_scope(db_url) as s:
        tasks_before = int(s.exec(select(func.count()).select_from(AgentTask)).one())
    again = client.post("/api/events", json=event(data={"survey": "nps", "nps": 2}), headers=KEY)
    assert again.status_code == 200 and again.json() == {**first.json(), "created": False, "touches": 0,
                                                         "tasks": 0} | {"event_id": "ev-1"}
    assert event_count(db_url) == 1
    with session_scope(db_url) as s:
        stored = s.exec(select(Event)).one()
        assert stored.data["nps"] == 4 and stored.customer_id is not None
        assert int(s.exec(select(func.count()).select_from(AgentTask)).one()) == tasks_before


def test_openapi_documents_the_api_and_works_offline(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    assert {"/api/events", "/api/customers/{external_id}", "/api/tasks", "/api/tasks/{task_id}/claim",
            "/api/tasks/{task_id}/complete"} <= set(spec["paths"])
    assert "X-API-Key" in str(spec["components"]["securitySchemes"])
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN
    # Every operation has an id of its own (client generators refuse duplicates; the webhooks that take
    # GET and POST on one path had one id for both).
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values() if "operationId" in op]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_openapi_describes_the_api_and_webhooks_not_the_consoles_pages(app: FastAPI, client: TestClient) -> None:
    # Public on purpose (integrators read it before they hold a key; every route it lists checks a key,
    # a session or a provider's signature itself), it listed every admin and ops form too, which are no API.
    paths = set(client.get("/api/openapi.json").json()["paths"])
    assert paths and all(p.startswith(("/api/", "/hooks/")) for p in paths), sorted(paths)
    routes = {getattr(e, "path", "") for e in fastapi.routing.iter_route_contexts(app.routes)}
    assert {"/admin/users", "/ops/test-send", "/tasks/{task_id}/reassign"} <= routes  # still served


def test_customer_upsert_and_masked_read(client: TestClient, db_url: str) -> None:
    created = client.put("/api/customers/C9", headers=KEY, json={
        "name": "赵六", "phone": "+8613512345678", "email": "zhao@example.com", "tier": "platinum",
        "consent_sms": True, "consent_source": "crm", "advisor": "ann"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["phone"] == "135****5678" and body["email"] == "z***@example.com" and body["name"] == "赵*"
    updated = client.put("/api/customers/C9", headers=KEY, json={"tier": "diamond"})
    assert updated.status_code == 200 and updated.json()["tier"] == "diamond"
    read = client.get("/api/customers/C9", headers=KEY).json()
    assert "13512345678" not in str(read) and read["phone"] == "135****5678"
    with session_scope(db_url) as s:
        row = s.exec(select(Customer).where(Customer.external_id == "C9")).one()
        assert row.phone == "+8613512345678" and row.consent_sms_source == "crm" and row.consent_sms_at
    bad = client.put("/api/customers/C10", headers=KEY, json={"name": "x", "tier": "bronze"})
    assert bad.status_code == 422 and "tier" in str(bad.json()["detail"])
    assert client.put("/api/customers/C11", headers=KEY, json={"tier": "gold"}).status_code == 422
    assert client.get("/api/customers/NOPE", headers=KEY).status_code == 404


def test_tasks_with_a_desk_key_acting_for_an_agent(client: TestClient, seed: Seed) -> None:
    everything = client.get("/api/tasks?scope=all", headers=KEY).json()
    assert len(everything) == 5 and all("*" in t["customer"] for t in everything)
    acting = {**DESK, "X-Acting-User": "ann"}
    mine = client.get("/api/tasks", headers=acting).json()
    assert [t["id"] for t in mine] == [seed.tasks["ann_first"], seed.tasks["ann_second"]]
    claimed = client.post(f"/api/tasks/{seed.tasks['free']}/claim", headers=acting)
    assert claimed.status_code == 200 and claimed.json() == {"task_id": seed.tasks["free"], "status": "claimed"}
    assert client.post(f"/api/tasks/{seed.tasks['free']}/claim", headers={**DESK, "X-Acting-User": "bob"}
                       ).status_code in (404, 409)  # 404 once ann has it: not visible to bob
    done = client.post(f"/api/tasks/{seed.tasks['free']}/complete", headers=acting, json={"outcome": "no_answer"})
    assert done.status_code == 200 and done.json()["follow_up_task_id"]
    bad = client.post(f"/api/tasks/{seed.tasks['ann_first']}/complete", headers=acting, json={"outcome": "maybe"})
    assert bad.status_code == 422 and "outcome" in str(bad.json()["detail"])
    assert client.post(f"/api/tasks/{seed.tasks['bob']}/complete", headers=acting,
                       json={"outcome": "reached"}).status_code == 404  # not hers: same as no such task
    assert client.post(f"/api/tasks/{seed.tasks['ann_first']}/claim", headers=DESK).status_code == 422


def _task_state(url: str, task_id: int) -> tuple[str, int | None]:
    with session_scope(url) as s:
        task = s.get(AgentTask, task_id)
        assert task is not None
        return task.status, task.assignee_id


REFUSED = {"detail": "X-Acting-User names a user this key may not act for"}


@pytest.mark.parametrize("key", [API_KEY, "other-key", "crm-key-0123456789"])
def test_a_system_key_acts_for_nobody(client: TestClient, seed: Seed, db_url: str, key: str) -> None:
    # Before keys had owners, any key could name any user in X-Acting-User and work their tasks.
    for user in ("ann", "bob", "sue", "adam"):
        headers = {"X-API-Key": key, "X-Acting-User": user}
        listed = client.get("/api/tasks", headers=headers)
        assert (listed.status_code, listed.json()) == (403, REFUSED)
        assert client.post(f"/api/tasks/{seed.tasks['free']}/claim", headers=headers).status_code == 403
        assert client.post(f"/api/tasks/{seed.tasks['ann_first']}/complete", headers=headers,
                           json={"outcome": "reached"}).status_code == 403
        assert client.post("/api/events", headers=headers, json=event(event_id=f"as-{user}")).status_code == 403
    assert _task_state(db_url, seed.tasks["free"]) == ("open", None)
    assert _task_state(db_url, seed.tasks["ann_first"]) == ("open", seed.users["ann"])
    assert event_count(db_url) == 0
    # Acting as itself (no X-Acting-User), a system key still does a system's work.
    assert client.post("/api/events", headers={"X-API-Key": key}, json=event()).status_code == 201
    assert client.get("/api/tasks?scope=all", headers={"X-API-Key": key}).status_code == 200


def test_a_desk_key_acts_only_for_the_agents_of_its_teams(client: TestClient, seed: Seed, db_url: str) -> None:
    with session_scope(db_url) as s:
        s.add(AppUser(username="dan", display_name="Dan", role="agent", team="a", password_hash="x", active=False,
                      created_at=seed.now))
    # cara is an agent of team b, sue the supervisor of team a, dan an inactive agent of team a,
    # nobody does not exist: one answer for all of them, so the key cannot probe who exists.
    for user in ("cara", "sue", "dan", "nobody", "adam"):
        response = client.get("/api/tasks", headers={**DESK, "X-Acting-User": user})
        assert (response.status_code, response.json()) == (403, REFUSED), user
    assert client.post(f"/api/tasks/{seed.tasks['cara']}/claim",
                       headers={**DESK, "X-Acting-User": "cara"}).status_code == 403
    assert _task_state(db_url, seed.tasks["cara"]) == ("open", seed.users["cara"])
    # The team b desk, configured by its digest only, works for cara and not for ann.
    desk_b = {"X-API-Key": DESK_B_KEY}
    assert [t["id"] for t in client.get("/api/tasks", headers={**desk_b, "X-Acting-User": "cara"}).json()] == [
        seed.tasks["cara"]]
    assert client.get("/api/tasks", headers={**desk_b, "X-Acting-User": "ann"}).status_code == 403
    # Acting as itself it is a system key: events and customers.
    assert client.post("/api/events", headers=DESK, json=event()).status_code == 201
    assert client.get("/api/customers/C1", headers=DESK).status_code == 200


def test_a_personal_key_acts_only_as_its_owner(client: TestClient, seed: Seed, db_url: str) -> None:
    mine = client.get("/api/tasks", headers=ANN)
    assert [t["id"] for t in mine.json()] == [seed.tasks["ann_first"], seed.tasks["ann_second"]]
    assert client.get("/api/tasks", headers={**ANN, "X-Acting-User": "ann"}).status_code == 200
    for user in ("bob", "cara", "sue"):
        assert client.get("/api/tasks", headers={**ANN, "X-Acting-User": user}).status_code == 403
        assert client.post(f"/api/tasks/{seed.tasks['free']}/claim",
                           headers={**ANN, "X-Acting-User": user}).status_code == 403
    assert _task_state(db_url, seed.tasks["free"]) == ("open", None)
    assert client.get("/api/tasks?scope=all", headers=ANN).status_code == 403
    # Events and customers are a system's work, not a person's.
    assert client.post("/api/events", headers=ANN, json=event()).status_code == 403
    assert client.get("/api/customers/C1", headers=ANN).status_code == 403
    assert client.put("/api/customers/C1", headers=ANN, json={"branch": "x"}).status_code == 403
    assert event_count(db_url) == 0
    claimed = client.post(f"/api/tasks/{seed.tasks['free']}/claim", headers=ANN)
    assert claimed.status_code == 200
    assert _task_state(db_url, seed.tasks["free"]) == ("claimed", seed.users["ann"])
    # A key whose role is not its owner's (sue is a supervisor) works for nobody; nor does a
    # personal key whose owner has been deactivated.
    assert client.get("/api/tasks", headers={"X-API-Key": MISNAMED_KEY}).status_code == 403
    with session_scope(db_url) as s:
        ann = s.get(AppUser, seed.users["ann"])
        assert ann is not None
        ann.active = False
    assert client.get("/api/tasks", headers=ANN).status_code == 403


def test_the_audit_log_names_the_key(client: TestClient, db_url: str) -> None:
    assert client.put("/api/customers/C1", headers={"X-API-Key": "crm-key-0123456789"},
                      json={"branch": "北京分公司"}).status_code == 200
    assert client.put("/api/customers/C2", headers=KEY, json={"branch": "北京分公司"}).status_code == 200
    with session_scope(db_url) as s:
        rows = s.exec(select(AuditLog).where(AuditLog.action == "customer_upsert")).all()
        actors = sorted(a.actor for a in rows)
    assert actors == ["api:crm", "api:legacy-2"]


def test_api_keys_format(caplog: pytest.LogCaptureFixture) -> None:
    digest = hashlib.sha256(b"hashed-key").hexdigest()
    raw = ", ".join([
        "bare-secret", f"sha256:{digest}", "crm:system:crm-secret", "phones:desk=a+b:desk-secret",
        f"all:desk=*:sha256:{digest}", "ann:agent:ann-secret", "sue:supervisor:sue-secret",
        # Ignored, each with a warning that says why but never shows the key:
        "crm:system:second-crm-secret", "x:desk:no-teams-secret", "x:admin:admin-secret", "x:system:",
        "sha256:abc", "y:system:sha256:nothex", "two:parts-secret", " :system:blank-name-secret",
    ])
    with caplog.at_level(logging.WARNING, logger="console.config"):
        keys = parse_api_keys(raw)
    assert [(k.name, k.role, sorted(k.teams), k.legacy) for k in keys] == [
        ("legacy-1", "system", [], True), ("legacy-2", "system", [], True), ("crm", "system", [], False),
        ("phones", "desk", ["a", "b"], False), ("all", "desk", ["*"], False), ("ann", "agent", [], False),
        ("sue", "supervisor", [], False),
    ]
    assert keys[0].digest == hashlib.sha256(b"bare-secret").digest()
    assert keys[1].digest == keys[4].digest == bytes.fromhex(digest)
    assert keys[2].digest == hashlib.sha256(b"crm-secret").digest()
    ignored = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert [m.split(" ignored")[0] for m in ignored] == [f"JOURNEYS_API_KEYS entry {n}" for n in range(8, 16)]
    assert "already used" in ignored[0] and "desk=TEAM" in ignored[1] and "role must be" in ignored[2]
    # The old forms are named in one warning by their digest's first digits, never by the key.
    legacy = [r.getMessage() for r in caplog.records if "old form" in r.getMessage()]
    assert len(legacy) == 1 and "without acting rights" in legacy[0]
    assert f"legacy-1 (sha256 {hashlib.sha256(b'bare-secret').hexdigest()[:8]}" in legacy[0]
    for secret in ("bare-secret", "crm-secret", "no-teams-secret", "admin-secret", "parts-secret",
                   "blank-name-secret", digest):
        assert secret not in caplog.text
    # Who may act for whom: a desk for the agents of its teams, a person only as themself, a system for nobody.
    phones, everywhere, ann = keys[3], keys[4], keys[5]
    assert phones.may_act_for("ann", "agent", "a") and phones.may_act_for("x", "agent", "b")
    assert not phones.may_act_for("cara", "agent", "c") and not phones.may_act_for("sue", "supervisor", "a")
    assert not phones.may_act_for("loner", "agent", None) and everywhere.may_act_for("loner", "agent", None)
    assert ann.may_act_for("ann", "agent", "a") and not ann.may_act_for("bob", "agent", "a")
    assert not keys[0].may_act_for("ann", "agent", "a") and not keys[2].may_act_for("ann", "agent", "a")


def test_every_422_has_the_documented_shape(client: TestClient, seed: Seed) -> None:
    # The first five used to answer {"detail": "<a sentence>"} where the OpenAPI promises a list.
    responses = {
        "no acting user": client.post(f"/api/tasks/{seed.tasks['free']}/claim", headers=DESK),
        "no acting user (complete)": client.post(f"/api/tasks/{seed.tasks['free']}/complete", headers=DESK,
                                                 json={"outcome": "reached"}),
        "call back without a time": client.post(f"/api/tasks/{seed.tasks['ann_first']}/complete", headers=ANN,
                                                json={"outcome": "call_back"}),
        "call back in the past": client.post(f"/api/tasks/{seed.tasks['ann_first']}/complete", headers=ANN,
                                             json={"outcome": "call_back",
                                                   "callback_at": "2001-01-01T00:00:00+00:00"}),
        "external id too long": client.put("/api/customers/" + "x" * 65, headers=KEY, json={"name": "x"}),
        "task id beyond the database's integers": client.post(f"/api/tasks/{2**63}/claim", headers=ANN),
        "unknown customer": client.post("/api/events", headers=KEY, json=event(customer_id="NOBODY")),
    }
    expected_loc = {
        "no acting user": ["header", "X-Acting-User"], "no acting user (complete)": ["header", "X-Acting-User"],
        "call back without a time": ["body", "callback_at"], "call back in the past": ["body", "callback_at"],
        "external id too long": ["path", "external_id"], "task id beyond the database's integers": ["path", "task_id"],
        "unknown customer": ["body", "customer_id"],
    }
    for name, response in responses.items():
        assert response.status_code == 422, (name, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, list) and detail, (name, detail)
        for error in detail:
            assert isinstance(error["loc"], list) and isinstance(error["msg"], str) and isinstance(error["type"], str)
        assert detail[0]["loc"] == expected_loc[name], (name, detail)


# Every status each API route answers with; the OpenAPI must document each, with its body's schema.
# 400 is FastAPI's own answer to a body it cannot decode (not UTF-8), on the routes that take one;
# 413 console.limits' answer to a body over the cap, whatever the route.
DOCUMENTED = {
    ("post", "/api/events"): {"200", "201", "400", "401", "403", "413", "422"},
    ("get", "/api/customers/{external_id}"): {"200", "401", "403", "404", "413", "422"},
    ("put", "/api/customers/{external_id}"): {"200", "201", "400", "401", "403", "409", "413", "422"},
    ("get", "/api/policies/{external_id}"): {"200", "401", "403", "404", "413", "422"},
    ("put", "/api/policies/{external_id}"): {"200", "201", "400", "401", "403", "413", "422"},
    ("get", "/api/claims/{external_id}"): {"200", "401", "403", "404", "413", "422"},
    ("put", "/api/claims/{external_id}"): {"200", "201", "400", "401", "403", "413", "422"},
    ("get", "/api/tasks"): {"200", "401", "403", "413", "422"},
    ("post", "/api/tasks/{task_id}/claim"): {"200", "401", "403", "404", "409", "413", "422"},
    ("post", "/api/tasks/{task_id}/complete"): {"200", "400", "401", "403", "404", "409", "413", "422"},
}


def test_openapi_documents_every_status_code_with_its_body(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for (method, path), codes in DOCUMENTED.items():
        operation = spec["paths"][path][method]
        assert set(operation["responses"]) == codes, (method, path)
        for code, response in operation["responses"].items():
            schema = response["content"]["application/json"]["schema"]
            assert schema, (method, path, code)
            if code == "422":
                assert schema == {"$ref": "#/components/schemas/HTTPValidationError"}
            elif code.startswith("4"):
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, code)
        # The acting user is a documented header of every API route.
        assert "X-Acting-User" in [p["name"] for p in operation.get("parameters", [])], (method, path)
    assert schemas["ErrorOut"]["required"] == ["detail"]
    assert schemas["HTTPValidationError"]["properties"]["detail"]["type"] == "array"


def test_tasks_with_a_session_need_the_csrf_header_for_changes(client: TestClient, seed: Seed) -> None:
    token = login(client, "ann")
    assert [t["id"] for t in client.get("/api/tasks?scope=claimable").json()] == [seed.tasks["free"]]
    assert client.post(f"/api/tasks/{seed.tasks['free']}/claim").status_code == 403
    ok = client.post(f"/api/tasks/{seed.tasks['free']}/claim", headers={"X-CSRF-Token": token})
    assert ok.status_code == 200
    assert client.get("/api/customers/C1").status_code == 401  # customers are for systems with a key


def test_webhooks_are_mounted_when_channels_offer_them(app: Any) -> None:
    try:
        import engine.loop.receipts as receipts
    except ImportError:
        pytest.skip("engine.loop.receipts is not there yet")
    has_factory = any(callable(getattr(receipts, n, None)) for n in
                      ("create_hooks_router", "create_router", "make_router", "build_router", "get_router"))
    assert app.state.receipts_mounted is has_factory
    if has_factory:
        client = TestClient(app)
        # Mounted and reachable: an unsigned provider callback is refused by the channel's own check.
        assert client.post("/hooks/twilio/status", data={"MessageSid": "x"}).status_code in (400, 403)


def test_refusals_before_the_route_have_the_documented_shape(client: TestClient, seed: Seed) -> None:
    # Answered by console.limits (413) and the JSON reader (422) before the route runs; documented all the same.
    oversized = client.post(f"/api/tasks/{seed.tasks['free']}/claim", headers=KEY, content=b"x" * (64 * 1024 + 1))
    assert oversized.status_code == 413, oversized.text
    assert oversized.headers["content-type"] == "application/json"
    assert set(oversized.json()) == {"detail"} and isinstance(oversized.json()["detail"], str)
    # Bytes that are not UTF-8 (here a UTF-16 byte order mark, which Python's json would have taken as UTF-16):
    # malformed JSON, in the shape of every 422, saying which byte.
    unreadable = client.post("/api/events", headers={**KEY, "Content-Type": "application/json"}, content=b"\xff\xfe{")
    assert unreadable.status_code == 422, unreadable.text
    [detail] = unreadable.json()["detail"]
    assert detail["type"] == "json_invalid" and "its byte 1 (0xFF) is not UTF-8" in detail["msg"], detail
