"""REST API for policies and claims (console/api_policies.py): upserts with the CSV import's rules, a 422
naming the field, the key and audit rules of the customer endpoints, and what the planner then sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from console.app import create_app
from engine.planning.planner import plan
from store.bulk_writer import CLAIM
from store.db import session_scope
from store.importing import import_csv
from store.models import AuditLog, Claim, Policy
from tests.console.conftest import API_KEY
from tests.db_support import rows
from tests.plan_support import Book, utc

KEY = {"X-API-Key": API_KEY}
ANN_KEY = "ann-own-key-0123456789"
POLICY_BODY = {"customer_external_id": "C1", "product_line": "motor", "annual_premium": 3200,
               "start_date": "2026-03-01", "expiry_date": "2027-02-28"}
CLAIM_BODY = {"customer_external_id": "C3", "filed_at": "2026-05-01T09:30:00+08:00", "amount": 1800.5}


@pytest.fixture
def console_env(console_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_API_KEYS", f"{API_KEY}, crm:system:crm-key-0123456789, ann:agent:{ANN_KEY}")


def detail_of(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    return detail


def test_policy_upsert_read_and_audit(client: TestClient, db_url: str) -> None:
    created = client.put("/api/policies/P9", headers=KEY, json={**POLICY_BODY, "product_line": "MOTOR"})
    assert created.status_code == 201, created.text
    assert created.json() == {**POLICY_BODY, "external_id": "P9", "product_line": "motor", "annual_premium": 3200.0,
                              "status": "active", "premium_due_date": None, "grace_period_end": None,
                              "created": True}
    # Only what is given changes; null clears an optional date.
    updated = client.put("/api/policies/P9", headers={"X-API-Key": "crm-key-0123456789"},
                         json={"premium_due_date": "2026-09-01", "grace_period_end": "2026-10-01", "status": "lapsed"})
    assert updated.status_code == 200 and updated.json()["created"] is False
    assert client.put("/api/policies/P9", headers=KEY, json={"grace_period_end": None}).status_code == 200
    read = client.get("/api/policies/P9", headers=KEY).json()
    assert (read["product_line"], read["status"], read["premium_due_date"], read["grace_period_end"],
            read["expiry_date"]) == ("motor", "lapsed", "2026-09-01", None, "2027-02-28")
    # Moved to another customer by external id.
    assert client.put("/api/policies/P9", headers=KEY, json={"customer_external_id": "C2"}).json()[
        "customer_external_id"] == "C2"
    assert client.get("/api/policies/NOPE", headers=KEY).status_code == 404
    with session_scope(db_url) as s:
        audits = s.exec(select(AuditLog).where(AuditLog.action == "policy_upsert").order_by(AuditLog.id)).all()  # type: ignore[arg-type]
        assert [(a.actor, a.detail["created"], a.detail["fields"]) for a in audits] == [
            ("api:legacy-1", True, sorted(POLICY_BODY)),
            ("api:crm", False, ["grace_period_end", "premium_due_date", "status"]),
            ("api:legacy-1", False, ["grace_period_end"]),
            ("api:legacy-1", False, ["customer_external_id"]),
        ]
        assert all(str(a.target_id) == str(audits[0].target_id) for a in audits)


@pytest.mark.parametrize(("body", "fields"), [
    ({**POLICY_BODY, "product_line": "boat"}, ["product_line"]),
    ({**POLICY_BODY, "annual_premium": -1}, ["annual_premium"]),
    ({**POLICY_BODY, "annual_premium": "lots"}, ["annual_premium"]),
    ({**POLICY_BODY, "start_date": "2026/03/01"}, ["start_date"]),
    ({**POLICY_BODY, "start_date": 20260301}, ["start_date"]),
    ({**POLICY_BODY, "start_date": None}, ["start_date"]),
    ({**POLICY_BODY, "expiry_date": "2026-01-01"}, ["expiry_date"]),
    ({**POLICY_BODY, "premium_due_date": "2026-06-01", "grace_period_end": "2026-05-01"}, ["grace_period_end"]),
    ({**POLICY_BODY, "status": "void"}, ["status"]),
    ({**POLICY_BODY, "customer_external_id": "NOBODY"}, ["customer_external_id"]),
    ({**POLICY_BODY, "customer_external_id": None}, ["customer_external_id"]),
    ({**POLICY_BODY, "premium": 1}, ["premium"]),
    ({"customer_external_id": "C1", "product_line": "motor"}, ["annual_premium", "start_date", "expiry_date"]),
])
def test_a_bad_policy_is_422_naming_each_field_and_writes_nothing(client: TestClient, db_url: str,
                                                                 body: dict[str, Any], fields: list[str]) -> None:
    detail = detail_of(client.put("/api/policies/P9", headers=KEY, json=body))
    assert [e["loc"] for e in detail] == [["body", field] for field in fields], detail
    assert client.get("/api/policies/P9", headers=KEY).status_code == 404


def test_an_update_is_checked_against_the_stored_dates(client: TestClient) -> None:
    # P1 (seed) started 300 days ago: an expiry before that contradicts the stored start.
    detail = detail_of(client.put("/api/policies/P1", headers=KEY, json={"expiry_date": "2000-01-01"}))
    assert detail[0]["loc"] == ["body", "expiry_date"] and "is before start_date" in detail[0]["msg"]
    assert client.get("/api/policies/P1", headers=KEY).json()["expiry_date"] != "2000-01-01"


def test_claim_upsert_links_checks_and_derives_the_status(client: TestClient, db_url: str) -> None:
    created = client.put("/api/claims/L9", headers=KEY, json={**CLAIM_BODY, "product_line": "Health"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["product_line"], body["status"], body["policy_external_id"]) == ("health", "filed", None)
    # Without an offset a time is read in Asia/Shanghai, as the import reads it; stored as UTC.
    settled = client.put("/api/claims/L9", headers=KEY, json={"settled_at": "2026-05-20 10:00"})
    assert settled.status_code == 200
    with session_scope(db_url) as s:
        row = s.exec(select(Claim).where(Claim.external_id == "L9")).one()
        assert row.settled_at is not None and row.settled_at.replace(tzinfo=None).isoformat() == "2026-05-20T02:00:00"
        assert row.status == "filed"  # left out: the stored status stays
    assert client.put("/api/claims/L9", headers=KEY, json={"status": None}).json()["status"] == "settled"
    # P1 is C1's policy: not for C3's claim, and nothing is changed.
    detail = detail_of(client.put("/api/claims/L9", headers=KEY, json={"policy_external_id": "P1"}))
    assert detail == [{"type": "value_error", "loc": ["body", "policy_external_id"],
                       "msg": "policy 'P1' belongs to another customer"}]
    linked = client.put("/api/claims/L9", headers=KEY, json={"customer_external_id": "C1", "policy_external_id": "P1"})
    assert linked.status_code == 200 and linked.json()["policy_external_id"] == "P1"
    # Moving the claim to another customer keeps its link only if the policy is theirs too.
    assert detail_of(client.put("/api/claims/L9", headers=KEY, json={"customer_external_id": "C3"}))[0]["loc"] == [
        "body", "policy_external_id"]
    assert client.put("/api/claims/L9", headers=KEY, json={"policy_external_id": None}).json()[
        "policy_external_id"] is None
    assert client.get("/api/claims/L9", headers=KEY).json()["customer_external_id"] == "C1"
    assert client.get("/api/claims/NOPE", headers=KEY).status_code == 404
    with session_scope(db_url) as s:
        actions = s.exec(select(AuditLog.action).where(AuditLog.action == "claim_upsert")).all()
        assert len(actions) == 5  # the refused ones are not written, nor audited


@pytest.mark.parametrize(("body", "fields"), [
    ({**CLAIM_BODY, "settled_at": "2026-04-01T00:00:00+08:00"}, ["settled_at"]),
    ({**CLAIM_BODY, "status": "settled"}, ["status"]),
    ({**CLAIM_BODY, "filed_at": "yesterday"}, ["filed_at"]),
    ({**CLAIM_BODY, "amount": -5}, ["amount"]),
    ({**CLAIM_BODY, "amount": 1e308}, ["amount"]),
    ({**CLAIM_BODY, "product_line": "boat"}, ["product_line"]),
    ({**CLAIM_BODY, "policy_external_id": "NOPE"}, ["policy_external_id"]),
    ({"customer_external_id": "C3"}, ["filed_at", "amount"]),
])
def test_a_bad_claim_is_422_naming_the_field(client: TestClient, body: dict[str, Any], fields: list[str]) -> None:
    detail = detail_of(client.put("/api/claims/L9", headers=KEY, json=body))
    assert [e["loc"] for e in detail] == [["body", field] for field in fields], detail
    assert client.get("/api/claims/L9", headers=KEY).status_code == 404


def test_a_personal_key_may_not_touch_policies_or_claims(client: TestClient) -> None:
    ann = {"X-API-Key": ANN_KEY}
    for call in (client.get("/api/policies/P1", headers=ann), client.get("/api/claims/L1", headers=ann),
                 client.put("/api/policies/P1", headers=ann, json={"status": "lapsed"}),
                 client.put("/api/claims/L1", headers=ann, json=CLAIM_BODY)):
        assert call.status_code == 403, call.text
    assert client.put("/api/policies/P1", headers={"X-API-Key": "wrong"}, json={"status": 1}).status_code == 401
    assert client.get("/api/policies/P1", headers=KEY).json()["status"] == "active"
    assert client.get("/api/claims/L1", headers=KEY).status_code == 404


# The same value through a one-row import file and through the API: refused by both with the
# import's reason, or taken by both and stored alike.
POLICY_CELLS = [
    ("product_line", "Health"), ("product_line", "boat"), ("annual_premium", "1e3"), ("annual_premium", "nan"),
    ("annual_premium", "-0.5"), ("annual_premium", "12.345"), ("start_date", "2026-2-1"), ("start_date", "2026-02-30"),
    ("expiry_date", "2025-12-31"), ("premium_due_date", "2026-07-01"), ("status", "Renewed"), ("status", "gone"),
    ("annual_premium", "1e308"), ("annual_premium", "1000000000000"),
]


@pytest.mark.parametrize(("column", "value"), POLICY_CELLS)
def test_the_api_takes_and_refuses_policy_values_as_the_import_does(client: TestClient, db_url: str,
                                                                   tmp_path: Path, column: str, value: str) -> None:
    cells = {"external_id": "PX", "customer_external_id": "C1", "product_line": "motor", "annual_premium": "900",
             "start_date": "2026-01-01", "expiry_date": "2026-12-31", column: value}
    path = tmp_path / "policies.csv"
    path.write_text(",".join(cells) + "\n" + ",".join(cells.values()) + "\n", encoding="utf-8")
    report = import_csv("policies", path, db_url)
    body = {k: v for k, v in cells.items() if k != "external_id"}
    answer = client.put("/api/policies/PY", headers=KEY, json=body)
    if report.rejected:
        [msg] = [e["msg"] for e in detail_of(answer)]
        assert report.rejected[0].reason in msg
        assert client.get("/api/policies/PX", headers=KEY).status_code == 404
    else:
        assert report.inserted == 1 and answer.status_code == 201, answer.text
        with session_scope(db_url) as s:
            found = s.exec(select(Policy).where(Policy.external_id.in_(["PX", "PY"]))).all()  # type: ignore[attr-defined]
            stored = {p.external_id: p.model_dump(exclude={"id", "external_id"}) for p in found}
        assert stored["PX"] == stored["PY"]


# --- what the planner sees next ------------------------------------------------------------------


@pytest.fixture
def book_client(book: Book, console_env: None) -> Iterator[TestClient]:
    with TestClient(create_app(book.url), base_url="http://testserver") as c:
        yield c


def previewed(book: Book, start: Any, end: Any, journey: str) -> list[tuple[str, Any]]:
    seen: list[Any] = []
    plan(end, start, dry_run=True, url=book.url, sink=seen.append)
    found = [(d.wanted.step_id, d.due_at) for c in seen for d in c.decisions if d.wanted.journey_id == journey]
    return sorted(found, key=lambda step_due: (step_due[1], step_due[0]))


def test_a_new_expiry_date_from_the_api_is_what_the_next_plan_reminds_of(book: Book, book_client: TestClient) -> None:
    book.shipped("renewal-reminder")
    book.customer(external_id="R1", tier="silver")
    assert book_client.put("/api/policies/RP1", headers=KEY, json={
        "customer_external_id": "R1", "product_line": "motor", "annual_premium": 2000,
        "start_date": "2026-05-01", "expiry_date": "2027-04-30"}).status_code == 201
    start, end = utc(2027, 3, 20), utc(2027, 6, 1)
    # 30 days before expiry at 10:00 Shanghai (02:00 UTC).
    assert ("reminder", utc(2027, 3, 31, 2)) in previewed(book, start, end, "renewal-reminder")
    # The CRM extends the policy: the reminder moves with it, and the old date plans nothing.
    assert book_client.put("/api/policies/RP1", headers=KEY, json={"expiry_date": "2027-05-31"}).status_code == 200
    moved = previewed(book, start, end, "renewal-reminder")
    assert moved[0] == ("reminder", utc(2027, 5, 1, 2))
    assert all(due >= utc(2027, 5, 1, 2) for _, due in moved)


@pytest.mark.parametrize(("product_line", "offered"), [("health", True), ("property", False)])
def test_a_claim_without_a_policy_gets_the_health_offer_by_its_own_product_line(
        book: Book, book_client: TestClient, product_line: str, offered: bool) -> None:
    book.shipped("claim-settled-health-consultation")
    book.customer(external_id="H1", tier="silver")
    answer = book_client.put("/api/claims/HL1", headers=KEY, json={
        "customer_external_id": "H1", "product_line": product_line, "filed_at": "2026-05-01",
        "settled_at": "2026-05-20T15:00:00+08:00", "amount": 3000})
    assert answer.status_code == 201, answer.text
    assert rows(book.url, CLAIM, "policy_id", "product_line") == [(None, product_line)]
    # Settled on 20 May: 30 days later, 19 June at 10:00 Shanghai.
    due = [at for step, at in previewed(book, utc(2026, 6, 1), utc(2026, 6, 30), "claim-settled-health-consultation")
           if step == "offer"]
    assert due == ([utc(2026, 6, 19, 2)] if offered else [])
