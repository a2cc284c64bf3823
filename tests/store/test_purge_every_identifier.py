"""The retention purge clears every identifier and every consent a customer row holds, not only the
first channels': the app push registration id (a device's id, personal data under PIPL) and the
push and per-purpose marketing consents with where and when they were given (migration 0009)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from store.bulk_writer import CUSTOMER
from store.clock import utcnow
from store.db import make_engine
from store.retention import purge
from tests.store import retention_book


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
