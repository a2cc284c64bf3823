"""The retention purge clears every identifier and every consent a customer row holds, not only the
first channels': the app push registration id (a device's id, personal data under PIPL) and the
push and per-purpose marketing consents with where and when they were given (migration 0009)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from store.bulk_writer import CLAIM, CUSTOMER, POLICY, table
from store.clock import utcnow
from store.db import make_engine
from store.models import Event
from store.retention import purge
from tests.store import retention_book

EVENT = table(Event)


def test_purge_clears_the_push_id_and_every_consent_with_its_source(migrated_any_db: str) -> None:
    url, now = migrated_any_db, utcnow()
    groups = retention_book.build(url, now)
    long_ago = now - timedelta(days=4 * 365)
    given: dict[str, object] = {"push_registration_id": "1a0018970a1b2c3d", "consent_push": True}
    for channel in ("sms", "wechat", "email", "push"):
        given |= {f"consent_{channel}_marketing": True, f"consent_{channel}_marketing_source": "app",
                  f"consent_{channel}_marketing_at": long_ago}
    given |= {"consent_push_source": "app", "consent_push_at": long_ago}
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(CUSTOMER.update().values(given))
    assert purge(url, "3y", now=now).customer_ids == groups["old"]

    consents = [c for c in CUSTOMER.columns if c.name.startswith("consent_")]
    with engine.connect() as conn:
        for row in conn.execute(select(CUSTOMER.c.id, CUSTOMER.c.external_id, CUSTOMER.c.push_registration_id,
                                       *consents)).mappings():
            if row["id"] not in groups["old"]:
                assert row["push_registration_id"] == "1a0018970a1b2c3d"
                continue
            assert row["external_id"] == f"anonymised-{row['id']}"
            assert row["push_registration_id"] is None
            for column in consents:
                assert row[column.name] in (None, False), column.name
                if column.name.endswith(("_source", "_at")):
                    assert row[column.name] is None, column.name
    engine.dispose()


def test_purge_keeps_of_an_events_data_only_codes_and_figures(migrated_any_db: str) -> None:
    """Event types are data (config/events.yaml ships vehicle.inspection_due with a ``plate``), so what
    an anonymised customer's events keep is decided by each value, not by a list of field names."""
    url, now = migrated_any_db, utcnow()
    groups = retention_book.build(url, now)
    long_ago = now - timedelta(days=4 * 365)
    cid = groups["old"][0]
    kept = {"days_left": 15, "risk": 0.8, "urgent": True, "channel": "sms", "category": "claims", "touch_id": None}
    data = {**kept, "plate": "沪A12345", "description": "张三说保单地址错了", "contact": "13812345678",
            "mobile": 13812345678, "claim_id": "CLM-2022-0042", "person": {"tier": "gold", "alias": "Wang Wei"},
            "items": ["billing", "王伟 wang@example.com"]}
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(EVENT.insert().values(external_id="crm:1", type="vehicle.inspection_due", customer_id=cid,
                                           data=data, occurred_at=long_ago, received_at=long_ago))
    purge(url, "3y", now=now)
    with engine.connect() as conn:
        stored = conn.execute(select(EVENT.c.data).where(EVENT.c.external_id == "crm:1")).scalar_one()
    engine.dispose()
    assert stored == {**kept, "person": {"tier": "gold"}, "items": ["billing"]}


def test_purge_replaces_the_source_systems_policy_and_claim_numbers(migrated_any_db: str) -> None:
    url, now = migrated_any_db, utcnow()
    groups = retention_book.build(url, now)
    long_ago = now - timedelta(days=4 * 365)
    engine = make_engine(url)
    with engine.begin() as conn:
        for cid in groups["old"] + groups["policy"]:
            policy = conn.execute(select(POLICY.c.id).where(POLICY.c.customer_id == cid)).scalar_one()
            conn.execute(CLAIM.insert().values(external_id=f"CLM-{cid}", customer_id=cid, policy_id=policy,
                                               product_line="health", filed_at=long_ago, settled_at=long_ago,
                                               amount=800.0, status="settled"))
    purge(url, "3y", now=now)
    with engine.connect() as conn:
        policies = {r.customer_id: r for r in conn.execute(select(POLICY)).all()}
        claims = {r.customer_id: r for r in conn.execute(select(CLAIM)).all()}
    engine.dispose()
    for cid in groups["old"]:
        assert policies[cid].external_id == f"anonymised-policy-{policies[cid].id}"
        assert claims[cid].external_id == f"anonymised-claim-{claims[cid].id}"
        assert (claims[cid].amount, claims[cid].status, claims[cid].product_line) == (800.0, "settled", "health")
    for cid in groups["policy"]:
        assert policies[cid].external_id.startswith("P-") and claims[cid].external_id == f"CLM-{cid}"
