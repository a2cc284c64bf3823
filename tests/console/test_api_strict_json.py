"""The API reads standard JSON only: ``NaN``/``Infinity``, half a surrogate pair and a name given twice
in one object are refused as malformed (422 ``json_invalid``) on every route that takes a body, and
nothing of the request is stored. Before, an event with ``"amount": Infinity`` was stored and its
customer left out of every plan run, and a ``"\\ud800"`` in a complaint's text made its task's page
fail for good."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import func, select
from starlette.testclient import TestClient

from store.db import session_scope
from store.models import AgentTask, Claim, Customer, Event, Policy
from store.standard_json import strict_loads
from tests.console.conftest import API_KEY, Seed, login

KEY = {"X-API-Key": API_KEY, "content-type": "application/json"}
ANN = {"X-API-Key": "ann-own-key-0123456789", "content-type": "application/json"}

# Each a JSON text with one thing Python's json reads and RFC 8259 does not allow; {} marks where.
BAD = {
    "Infinity": "Infinity", "-Infinity": "-Infinity", "NaN": "NaN",
    "lone high surrogate": '"a\\ud800b"', "lone low surrogate": '"\\udc00"',
    "reversed pair": '"\\udc00\\ud800"',
    # Read by Python as inf: stored as Infinity, which PostgreSQL's jsonb refuses (a 500).
    "overflowing number": "1e400", "overflowing negative": "-2.5E+999",
    # Read by Python as its last value, by other readers of the same text as its first.
    "repeated name": '{"k": 1, "k": 2}', "repeated name, escaped": '{"k": [], "\\u006b": 0}',
}
NOT_FINITE = ("Infinity", "-Infinity", "NaN", "overflowing number", "overflowing negative")
# (method, path, a good body with {} where the bad value goes)
ROUTES = {
    "event": ("POST", "/api/events", '{"event_id": "bad-1", "type": "claim.filed", "customer_id": "C1", '
              '"data": {"claim_id": "X1", "amount": 1000, "product_line": {}}}'),
    "customer": ("PUT", "/api/customers/C77", '{"name": "新客", "tier": "gold", "branch": {}}'),
    "policy": ("PUT", "/api/policies/P77", '{"customer_external_id": "C1", "product_line": "health", '
               '"annual_premium": {}, "start_date": "2026-01-01", "expiry_date": "2027-01-01"}'),
    "claim": ("PUT", "/api/claims/K77", '{"customer_external_id": "C1", "filed_at": "2026-11-01T08:00:00+08:00", '
              '"amount": {}}'),
    "task complete": ("POST", "/api/tasks/{task}/complete", '{"outcome": "reached", "notes": {}}'),
}


@pytest.fixture
def console_env(console_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_API_KEYS", f"{API_KEY}, ann:agent:ann-own-key-0123456789")


def _counts(url: str) -> dict[str, int]:
    with session_scope(url) as s:
        counts = {m.__name__: int(s.exec(select(func.count()).select_from(m)).one())
                  for m in (Event, Customer, Policy, Claim)}
        counts["open tasks"] = int(s.exec(select(func.count()).select_from(AgentTask)
                                          .where(AgentTask.status != "done")).one())
    return counts


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_non_standard_json_is_refused_on_every_route_and_nothing_is_stored(
    client: TestClient, seed: Seed, db_url: str, route: str
) -> None:
    method, path, body = ROUTES[route]
    path = path.replace("{task}", str(seed.tasks["ann_first"]))
    headers = ANN if route == "task complete" else KEY
    if route == "task complete":
        assert client.post(path.replace("complete", "claim"), headers=ANN).status_code == 200
    before = _counts(db_url)
    for name, bad in BAD.items():
        answer = client.request(method, path, headers=headers, content=body.replace("{}", bad).encode())
        assert answer.status_code == 422, (route, name, answer.text)
        detail = answer.json()["detail"]
        assert detail[0]["type"] == "json_invalid", (route, name, detail)
        assert ("finite number" in detail[0]["msg"]) is (name in NOT_FINITE)
        assert _counts(db_url) == before, (route, name)
    # The same body with a plain value goes in: the refusal was the value's, not the route's.
    good = body.replace("{}", {"event": '"health"', "customer": '"x"', "task complete": '"x"'}.get(route, "100"))
    assert client.request(method, path, headers=headers, content=good.encode()).status_code in (200, 201)


def test_an_event_naming_its_id_twice_is_refused(client: TestClient, db_url: str) -> None:
    before = _counts(db_url)
    body = '{"event_id": "e1", "type": "complaint.filed", "customer_id": "C1", "event_id": "e2"}'
    answer = client.post("/api/events", headers=KEY, content=body.encode())
    assert answer.status_code == 422 and answer.json()["detail"][0]["type"] == "json_invalid"
    assert "'event_id' appears twice" in answer.json()["detail"][0]["msg"]
    assert _counts(db_url) == before


def test_a_surrogate_in_a_key_is_refused_too(client: TestClient, db_url: str) -> None:
    before = _counts(db_url)
    body = ROUTES["event"][2].replace('"product_line": {}', '"\\ud83d": 1')
    answer = client.post("/api/events", headers=KEY, content=body.encode())
    assert answer.status_code == 422 and answer.json()["detail"][0]["type"] == "json_invalid"
    assert _counts(db_url) == before


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_standard_json_reads_as_python_s_json_reads_it(value: Any) -> None:
    """Differential: for JSON within the standard, the strict reader and json.loads agree, escaped or not."""
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert strict_loads(text.encode("utf-8")) == json.loads(text)


@given(JSON, st.sampled_from(sorted(BAD)))
def test_any_document_holding_a_non_standard_value_is_refused(value: Any, bad: str) -> None:
    text = f'[{json.dumps(value)}, {{"deep": [{BAD[bad]}]}}]'
    with pytest.raises(json.JSONDecodeError):
        strict_loads(text.encode("utf-8"))


def test_a_task_whose_event_was_stored_with_half_a_surrogate_pair_still_opens(
    client: TestClient, seed: Seed, db_url: str
) -> None:
    """Rows stored before the API refused such text: the task's page opens, the character shown as '?'."""
    with session_scope(db_url) as s:
        event = Event(external_id="legacy-1", type="complaint.filed", customer_id=seed.customers["C1"],
                      data={"category": "c", "severity": "high", "text": "退保\ud800", "source": "app"},
                      occurred_at=seed.now, received_at=seed.now)
        s.add(event)
        s.flush()
        task = s.get(AgentTask, seed.tasks["ann_first"])
        assert task is not None
        task.event_id = event.id
        s.add(task)
    login(client, "ann")
    page = client.get(f"/tasks/{seed.tasks['ann_first']}")
    assert page.status_code == 200, page.text
    assert "退保?" in page.text


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("encoding", ["gbk", "latin-1", "utf-16"])
def test_a_body_not_in_utf8_is_refused_as_such_and_nothing_is_stored(
    client: TestClient, seed: Seed, db_url: str, route: str, encoding: str
) -> None:
    """A system on Chinese Windows posting GBK (or a Western one Latin-1) got FastAPI's bare 400 "There
    was an error parsing the body", which does not say what to change; the 422 names the encoding. UTF-16,
    which Python's json guessed from the first bytes and took, is refused too: JSON between systems is UTF-8
    (RFC 8259 §8.1), and a reader that guesses reads GBK that happens to look like UTF-16 as nonsense."""
    method, path, body = ROUTES[route]
    path = path.replace("{task}", str(seed.tasks["ann_first"]))
    headers = ANN if route == "task complete" else KEY
    if route == "task complete":
        assert client.post(path.replace("complete", "claim"), headers=ANN).status_code == 200
    text = body.replace("{}", {"event": '"健康险"', "customer": '"北京分行"'}.get(route, '"理赔说明"'))
    if encoding == "latin-1":
        text = text.replace('"健康险"', '"santé"').replace('"北京分行"', '"Zürich"').replace('"理赔说明"', '"déjà"')
    before = _counts(db_url)
    answer = client.request(method, path, headers=headers, content=text.encode(encoding, "replace"))
    assert answer.status_code == 422, (route, answer.text)
    detail = answer.json()["detail"]
    assert detail[0]["type"] == "json_invalid", detail
    assert "is not UTF-8; send JSON encoded in UTF-8" in detail[0]["msg"], detail
    assert _counts(db_url) == before
    # The same text in UTF-8 is not refused (the task's outcome text is no outcome code: 422 of its own).
    again = client.request(method, path, headers=headers, content=text.encode("utf-8"))
    assert "not UTF-8" not in again.text, again.text
