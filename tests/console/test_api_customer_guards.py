"""``PUT /api/customers/{id}`` keeps what the import keeps: an anonymised customer takes no personal data
again, and a consent the customer withdrew through us (a TD reply, an unsubscribe link) is not given back
by another system. Before, the PUT wrote a name and a phone back onto an anonymised row, and
``consent_sms: true`` undid an opt-out, so marketing went out again the next day."""

from __future__ import annotations

from datetime import UTC, timedelta

from sqlmodel import select
from starlette.testclient import TestClient

from channels.optout import record_opt_out
from store.clock import utcnow
from store.db import session_scope
from store.models import Customer
from tests.console.conftest import API_KEY, Seed

HEADERS = {"X-API-Key": API_KEY}


def _row(db_url: str, external_id: str) -> Customer:
    with session_scope(db_url) as s:
        row = s.exec(select(Customer).where(Customer.external_id == external_id)).one()
        s.expunge(row)
        return row


def test_an_anonymised_customer_takes_no_personal_data(client: TestClient, seed: Seed, db_url: str) -> None:
    assert client.put("/api/customers/A1", headers=HEADERS, json={"name": "张三", "phone": "13812345678"}
                      ).status_code == 201
    with session_scope(db_url) as s:
        row = s.exec(select(Customer).where(Customer.external_id == "A1")).one()
        row.name, row.phone, row.anonymised_at = "", None, utcnow() - timedelta(days=1)
        s.add(row)
    answer = client.put("/api/customers/A1", headers=HEADERS, json={"name": "张三", "phone": "13812345678"})
    assert answer.status_code == 409, answer.text
    assert "anonymised" in answer.json()["detail"]
    kept = _row(db_url, "A1")
    assert (kept.name, kept.phone) == ("", None)


def test_a_consent_withdrawn_by_the_customer_is_not_given_back(client: TestClient, seed: Seed, db_url: str) -> None:
    assert client.put("/api/customers/A2", headers=HEADERS,
                      json={"name": "李四", "phone": "13812345679", "consent_sms": True,
                            "consent_sms_marketing": True}).status_code == 201
    with session_scope(db_url) as s:
        customer_id = _row(db_url, "A2").id
        assert customer_id is not None
        assert record_opt_out(s, customer_id, "sms", source="reply:sms", dedup_key="td-a2") is not None
    for body in ({"consent_sms": True}, {"consent_sms_marketing": True, "name": "李四"}):
        answer = client.put("/api/customers/A2", headers=HEADERS, json=body)
        assert answer.status_code == 409, answer.text
        assert "withdrawn by the customer (reply:sms)" in answer.json()["detail"]
        assert "consent_at" in answer.json()["detail"]
    withdrawn = _row(db_url, "A2")
    assert withdrawn.consent_sms is False and withdrawn.consent_sms_source == "reply:sms"
    # Anything else, and a consent the customer did not withdraw, is still written.
    answer = client.put("/api/customers/A2", headers=HEADERS, json={"branch": "SH", "consent_email": True})
    assert answer.status_code == 200, answer.text
    assert _row(db_url, "A2").consent_email is True


def test_a_consent_given_after_the_opt_out_is_taken_with_its_time(client: TestClient, seed: Seed, db_url: str) -> None:
    """What the import takes (a consent time later than the withdrawal gives the consent back, an earlier
    one does not, a future one is refused), the API takes: it had no consent time at all, so a customer
    who consented again at the branch could not be given back their SMS by the CRM."""
    assert client.put("/api/customers/A3", headers=HEADERS, json={"name": "王五", "consent_sms": True}
                      ).status_code == 201
    with session_scope(db_url) as s:
        customer_id = _row(db_url, "A3").id
        assert customer_id is not None
        assert record_opt_out(s, customer_id, "sms", source="reply:sms", dedup_key="td-a3",
                              at=utcnow() - timedelta(hours=2)) is not None
    withdrawn_at = _row(db_url, "A3").consent_sms_at
    assert withdrawn_at is not None

    before = (withdrawn_at - timedelta(days=1)).replace(tzinfo=UTC).isoformat()
    answer = client.put("/api/customers/A3", headers=HEADERS, json={"consent_sms": True, "consent_at": before})
    assert answer.status_code == 409, answer.text
    future = (utcnow() + timedelta(days=1)).isoformat()
    answer = client.put("/api/customers/A3", headers=HEADERS, json={"consent_sms": True, "consent_at": future})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "consent_at"]
    assert "in the future" in answer.json()["detail"][0]["msg"]
    assert _row(db_url, "A3").consent_sms is False

    after = utcnow() - timedelta(minutes=1)
    answer = client.put("/api/customers/A3", headers=HEADERS,
                        json={"consent_sms": True, "consent_source": "branch_form", "consent_at": after.isoformat()})
    assert answer.status_code == 200, answer.text
    given = _row(db_url, "A3")
    assert (given.consent_sms, given.consent_sms_source) == (True, "branch_form")
    assert given.consent_sms_at is not None and abs(given.consent_sms_at.replace(tzinfo=UTC) - after) < timedelta(
        seconds=1)
