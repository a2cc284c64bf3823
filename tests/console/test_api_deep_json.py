"""A JSON body nested deeper than the bound (store.standard_json.MAX_DEPTH) is a 422 json_invalid
naming why, as every other malformed body is, and nothing is stored (20,000 ``[`` had ended in
Python's RecursionError, answered as a bare 400)."""

from __future__ import annotations

from sqlmodel import func, select
from starlette.testclient import TestClient

from store.db import session_scope
from store.models import Event
from tests.console.conftest import API_KEY

KEY = {"X-API-Key": API_KEY, "content-type": "application/json"}


def test_a_deeply_nested_event_is_refused_and_nothing_stored(client: TestClient, db_url: str) -> None:
    body = ('{"event_id": "deep-1", "type": "app.login", "customer_id": "C1", "data": {"x": '
            + "[" * 20_000 + "]" * 20_000 + "}}")  # under the 64 KB body bound
    answer = client.post("/api/events", headers=KEY, content=body.encode())
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail[0]["type"] == "json_invalid" and "nested deeper than 64 levels" in detail[0]["msg"], detail
    with session_scope(db_url) as session:
        assert session.exec(select(func.count()).select_from(Event)).one() == 0
