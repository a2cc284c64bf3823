"""The API creates no customer, policy, claim or event under an id of the purge's form
(``anonymised-<id>``, store.retention_keys): it would stop the purge of the customer whose stand-in it
is (tests/store/test_stand_in_ids.py). A 422 naming the id; nothing is written, and the purge runs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from starlette.testclient import TestClient

from store.bulk_writer import CLAIM, CUSTOMER, POLICY, table
from store.clock import utcnow
from store.db import make_engine
from store.models import Event
from store.retention import purge
from tests.console.conftest import API_KEY, Seed
from tests.db_support import count, rows

KEY = {"X-API-Key": API_KEY}


def _refusal(where: list[str], column: str, external_id: str) -> dict[str, object]:
    return {"detail": [{"type": "value_error", "loc": where, "msg": (
        ("Value error, " if where[0] == "body" else "")
        + f"{column} {external_id!r} starts with 'anonymised-', which names only the records "
        "`journeys purge` anonymised: give the source system's own id")}]}


def test_no_row_is_created_under_an_id_of_the_purges_form(client: TestClient, db_url: str, seed: Seed) -> None:
    c1 = seed.customers["C1"]
    before = (rows(db_url, CUSTOMER, "external_id"), count(db_url, POLICY), count(db_url, CLAIM),
              count(db_url, table(Event)))
    squat = client.put(f"/api/customers/anonymised-{c1}", headers=KEY, json={"name": "Mallory"})
    assert (squat.status_code, squat.json()) == (422, _refusal(["path", "external_id"], "external_id",
                                                               f"anonymised-{c1}"))
    policy = client.put("/api/policies/anonymised-policy-1", headers=KEY, json={
        "customer_external_id": "C2", "product_line": "motor", "annual_premium": 10, "start_date": "2026-01-01",
        "expiry_date": "2027-01-01"})
    assert (policy.status_code, policy.json()) == (422, _refusal(["path", "external_id"], "external_id",
                                                                 "anonymised-policy-1"))
    claim = client.put("/api/claims/anonymised-claim-1", headers=KEY, json={
        "customer_external_id": "C2", "filed_at": "2026-05-01T09:30:00+08:00", "amount": 10})
    assert (claim.status_code, claim.json()) == (422, _refusal(["path", "external_id"], "external_id",
                                                               "anonymised-claim-1"))
    event = client.post("/api/events", headers=KEY, json={
        "event_id": "anonymised-event-1", "customer_id": "C2", "type": "app.login", "data": {}})
    assert (event.status_code, event.json()) == (422, _refusal(["body", "event_id"], "event_id",
                                                               "anonymised-event-1"))
    assert (rows(db_url, CUSTOMER, "external_id"), count(db_url, POLICY), count(db_url, CLAIM),
            count(db_url, table(Event))) == before

    # C1, made old with nothing in force, is anonymised by the purge and stays readable under her stand-in.
    now = utcnow()
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(POLICY.delete().where(POLICY.c.customer_id == c1))
        conn.execute(update(CUSTOMER).where(CUSTOMER.c.id == c1).values(
            created_at=now - timedelta(days=6 * 365), last_active_at=None))
    engine.dispose()
    assert c1 in purge(db_url, "1y", actor="test", now=now).customer_ids
    read = client.get(f"/api/customers/anonymised-{c1}", headers=KEY)
    assert (read.status_code, read.json()["name"]) == (200, "匿*")
