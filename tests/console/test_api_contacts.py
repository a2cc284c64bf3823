"""``PUT /api/customers/{id}`` reads a phone and an e-mail address as the CSV import does.

The API had a rule of its own (6 to 15 digits, an optional +): ``13812345678`` was stored as it was
given, not as ``+8613812345678``, so the customer's SMS replies, their opt-out among them, found
nobody (an inbound SMS is matched by its E.164 number); and numbers no phone has (``+0000000``) or
no SMS reaches were taken. Now each value the import takes is stored as the import stores it, and
each it refuses is a 422 with the import's reason, the number or address masked.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from channels.inbound import customers_by_phone
from store.db import session_scope
from store.importing.fields import FieldError, email, phone
from store.models import Customer
from tests.console.conftest import API_KEY, Seed

HEADERS = {"X-API-Key": API_KEY}
PHONE_TEXTS = ["13812345678", "+86 138-1234-5678", "(+86) 138 1234 5678", "0086 13812345678", "１３８１２３４５６７８",
               "+1 650 253 0000", "+86138123456789", "+0000000", "010-12345678", "138 1234 5678 ext 9", "123456",
               "+8613812345678"]
EMAIL_TEXTS = ["Zhang.San@Example.COM", "a@b", "a@b.c\u200b", "a..b@example.com", "x@example.com"]


def _stored(url: str, external_id: str) -> Customer | None:
    with session_scope(url) as s:
        return s.exec(select(Customer).where(Customer.external_id == external_id)).first()


def _as_imported(read: Any, text: str) -> str | None:
    try:
        return str(read(text))
    except FieldError:
        return None


@pytest.mark.parametrize(("field", "text"), [("phone", t) for t in PHONE_TEXTS] + [("email", t) for t in EMAIL_TEXTS])
def test_the_api_takes_and_stores_a_contact_as_the_import_does(client: TestClient, seed: Seed, db_url: str,
                                                                field: str, text: str) -> None:
    expected = _as_imported(phone if field == "phone" else email, text)
    external_id = "K-2"
    response = client.put(f"/api/customers/{external_id}", json={"name": "客户", field: text}, headers=HEADERS)
    row = _stored(db_url, external_id)
    if expected is None:
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", field]
        assert text not in response.text and row is None
    else:
        assert response.status_code == 201, response.text
        assert row is not None and getattr(row, field) == expected


def test_a_mainland_number_given_without_its_country_code_gets_its_sms_replies(client: TestClient, seed: Seed,
                                                                               db_url: str) -> None:
    response = client.put("/api/customers/K-1", json={"name": "客户", "phone": "138 0013 8000"}, headers=HEADERS)
    assert response.status_code == 201, response.text
    with session_scope(db_url) as s:
        assert [c.external_id for c in customers_by_phone(s, "+8613800138000")] == ["K-1"]
