"""``PUT /api/customers/{id}``: the device registration id and consent per purpose (issue 19)."""

from __future__ import annotations

from sqlmodel import select
from starlette.testclient import TestClient

from store.db import session_scope
from store.models import Customer
from tests.console.conftest import API_KEY

KEY = {"X-API-Key": API_KEY}


def test_registration_id_and_marketing_consent_through_the_api(client: TestClient, db_url: str) -> None:
    created = client.put("/api/customers/C19", headers=KEY, json={
        "name": "钱七", "push_registration_id": "170976fa8a8620ca0d4", "consent_push": True,
        "consent_sms": True, "consent_sms_marketing": False, "consent_source": "app"})
    assert created.status_code == 201, created.text
    with session_scope(db_url) as s:
        row = s.exec(select(Customer).where(Customer.external_id == "C19")).one()
        assert (row.push_registration_id, row.consent_push, row.consent_push_source) == (
            "170976fa8a8620ca0d4", True, "app")
        assert (row.consent_sms, row.consent_sms_marketing, row.consent_sms_marketing_source) == (True, False, "app")
        assert row.consent_wechat_marketing is None  # not given apart: follows the WeChat consent
    bad = client.put("/api/customers/C19", headers=KEY, json={"push_registration_id": ""})
    assert bad.status_code == 422 and "push_registration_id" in str(bad.json()["detail"])


def test_a_registration_id_that_is_not_one_is_refused_by_the_api(client: TestClient) -> None:
    for wrong in ("8613812345678", "wang.wei@example.com", "170976fa8a"):
        refused = client.put("/api/customers/C20", headers=KEY, json={"name": "钱七", "push_registration_id": wrong})
        assert refused.status_code == 422 and "not a JPush registration id" in refused.text, refused.text
