"""``POST /api/events`` against the event types of config/events.yaml: a declared type is taken
without code, a payload that does not fit is answered 422 naming every field at fault, and the
OpenAPI document lists each type with its description and fields."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from engine.language import event_types
from store.db import session_scope
from store.models import Event
from tests.console.conftest import API_KEY

KEY = {"X-API-Key": API_KEY}


def inspection(**data: Any) -> dict[str, Any]:
    # Ids are printable ASCII without spaces (console.text_rules): the fields joined by hyphens.
    return {"event_id": f"insp-{len(data)}-{'-'.join(sorted(data))}", "type": "vehicle.inspection_due",
            "customer_id": "C1",
            "occurred_at": "2027-03-01T08:00:00+08:00", "data": data}


def test_a_type_declared_in_the_file_is_taken(client: TestClient, db_url: str) -> None:
    response = client.post("/api/events", json=inspection(days_left=15, plate="沪A12345"), headers=KEY)
    assert response.status_code == 201, response.text
    with session_scope(db_url) as s:
        stored = s.exec(select(Event).where(Event.type == "vehicle.inspection_due")).one()
        assert stored.data == {"days_left": 15, "plate": "沪A12345"}


@pytest.mark.parametrize(("data", "fields", "words"), [
    ({"days_left": 15}, ["plate"], "data.plate is required for vehicle.inspection_due"),
    ({"days_left": "15", "plate": "沪A12345"}, ["days_left"], "data.days_left must be of type int, not str"),
    ({"days_left": True, "plate": "沪A12345"}, ["days_left"], "must be of type int, not bool"),
    ({"days_left": 15, "plate": "沪A12345", "colour": "red"}, ["colour"], "not a field of vehicle.inspection_due"),
    ({"plate": 7}, ["days_left", "plate"], "data.days_left is required"),
])
def test_a_payload_that_does_not_fit_is_422_naming_each_field(client: TestClient, db_url: str,
                                                              data: dict[str, Any], fields: list[str],
                                                              words: str) -> None:
    response = client.post("/api/events", json=inspection(**data), headers=KEY)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert sorted(err["loc"][-1] for err in detail) == sorted(fields), detail
    assert all(err["loc"][:2] == ["body", "data"] for err in detail)
    assert any(words in err["msg"] for err in detail), detail
    with session_scope(db_url) as s:
        assert s.exec(select(Event)).all() == []


def test_the_openapi_documents_each_type(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()["components"]["schemas"]["EventIn"]
    types = event_types.current()
    assert schema["properties"]["type"]["enum"] == sorted(types)
    documented = schema["x-event-types"]
    assert documented["vehicle.inspection_due"] == {
        "description": types["vehicle.inspection_due"].description,
        "fields": {"days_left": "int", "plate": "str"}, "required": ["days_left", "plate"]}
    text = schema["properties"]["type"]["description"]
    assert all(f"`{name}`" in text for name in types)
    assert "days_left (int, required)" in text
