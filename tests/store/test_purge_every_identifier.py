"""The retention purge clears every identifier and every consent a customer row holds, not only the
first channels': the app push registration id (a device's id, personal data under PIPL) and the
push and per-purpose marketing consents with where and when they were given (migration 0009)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from store.bulk_writer import CLAIM, CUSTOMER, POLICY, table
from store.clock import utcnow
from store.db import make_engine
from store.models import Event, Outcome, Touch
from store.retention import purge
from store.touch_reasons import ANONYMISED
from tests.store import retention_book

EVENT, OUTCOME, TOUCH = table(Event), table(Outcome), table(Touch)


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
        stored = conn.execute(select(EVENT.c.data, EVENT.c.external_id)
                              .where(EVENT.c.type == "vehicle.inspection_due")).one()
    engine.dispose()
    assert stored.data == {**kept, "person": {"tier": "gold"}, "items": ["billing"]}
    assert stored.external_id.startswith("anonymised-event-")  # the CRM's event id leads back to its customer


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


OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxYz1"


def test_purge_removes_personal_data_from_every_free_text_column(migrated_any_db: str) -> None:
    """A provider's error quotes the number or address it refused (in a touch's reason and its failed
    outcome's detail), a webhook's or a receipt's outcome may carry an openid, and an event's id from
    our own monitoring embeds the customer's source-system id; all of that outlived anonymisation.
    Each table is rewritten with one statement per batch, not one per row."""
    url, now = migrated_any_db, utcnow()
    groups = retention_book.build(url, now)
    long_ago = now - timedelta(days=4 * 365)
    reasons = {"invalid number +8613812345678": "invalid number [removed]",
               "To 138****5678 rejected: unreachable": "To [removed] rejected: unreachable",
               f"wechat 43004: openid={OPENID} unfollowed": "wechat 43004: openid=[removed] unfollowed",
               "mailbox wang.wei@example.com full": "mailbox [removed] full", "cap: 3 per 7d": "cap: 3 per 7d"}
    detail = {"provider": "twilio", "status": "undelivered", "attempts": 2, "reason": "invalid number +8613812345678",
              "to": OPENID, "touser": "x", "fallback": "wechat", "nested": {"why": f"user {OPENID} blocked"}}
    engine = make_engine(url)
    with engine.begin() as conn:
        written = 0
        for cid in groups["old"] + groups["policy"]:
            touches = [r.id for r in conn.execute(select(TOUCH.c.id).where(
                TOUCH.c.customer_id == cid, TOUCH.c.status == "delivered").order_by(TOUCH.c.id)).all()]
            for touch_id in touches:
                reason = list(reasons)[written % len(reasons)]
                conn.execute(TOUCH.update().where(TOUCH.c.id == touch_id).values(error_reason=reason))
                written += 1
            # Found only by its touch: a receipt's outcome that names no customer.
            conn.execute(OUTCOME.insert().values(dedup_key=f"fail:{cid}", touch_id=touches[0], customer_id=None,
                                                 channel="sms", kind="failed", detail=detail, occurred_at=long_ago))
            conn.execute(EVENT.insert().values(external_id=f"tier.adjustment:gold:20221101:R-{cid:03d}",
                                               type="tier.adjustment", customer_id=cid, data={"tier": "gold"},
                                               occurred_at=long_ago, received_at=long_ago))
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    sa_event.listen(Engine, "before_cursor_execute", count)
    try:
        purge(url, "3y", now=now, batch_size=1000)
    finally:
        sa_event.remove(Engine, "before_cursor_execute", count)
    with engine.connect() as conn:
        stored_reasons = {r.customer_id: [x for x in stored_reasons_of(conn, r.customer_id) if x]
                          for r in conn.execute(select(TOUCH.c.customer_id).distinct()).all()}
        # By its touch's customer: the purge replaces a purged customer's outcome keys (store.retention_keys).
        details = {f"fail:{r.customer_id}": r.detail for r in conn.execute(
            select(TOUCH.c.customer_id, OUTCOME.c.detail).join(TOUCH, TOUCH.c.id == OUTCOME.c.touch_id)
            .where(OUTCOME.c.kind == "failed")).all()}
        events = {r.customer_id: r.external_id for r in conn.execute(select(EVENT).where(
            EVENT.c.type == "tier.adjustment")).all()}
    engine.dispose()
    assert {r for cid in groups["old"] for r in stored_reasons[cid]} == {*reasons.values(), ANONYMISED}
    for cid in groups["old"]:
        assert details[f"fail:{cid}"] == {"provider": "twilio", "status": "undelivered", "attempts": 2,
                                          "fallback": "wechat", "nested": {}}
        assert events[cid].startswith("anonymised-event-")
    assert {r for cid in groups["policy"] for r in stored_reasons[cid]} == set(reasons)
    for cid in groups["policy"]:
        assert details[f"fail:{cid}"] == detail
        assert events[cid] == f"tier.adjustment:gold:20221101:R-{cid:03d}"
    for name in ("touch", "outcome", "event"):
        writes = [s for s in statements if s.lstrip().upper().startswith(f"UPDATE {name.upper()} ")]
        assert 1 <= len(writes) <= 4, (name, writes)


def stored_reasons_of(conn: Connection, customer_id: int) -> list[str | None]:
    return [r.error_reason for r in conn.execute(select(TOUCH.c.error_reason).where(
        TOUCH.c.customer_id == customer_id)).all()]
