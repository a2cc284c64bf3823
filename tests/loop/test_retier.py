"""Bulk re-tiering: history and events only for customers whose tier changed; a re-run changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlmodel import col, select

from engine.language.journey_registry import load_tier_config
from engine.loop.retier import retier
from store.db import session_scope
from store.models import Claim, Customer, Event, Policy, TierChange
from tests.loop.test_tier_model import ATTRIBUTES

AT = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
EARLIER = datetime(2025, 1, 1, tzinfo=UTC)


def test_retier_records_only_changes(migrated_any_db: str) -> None:
    with session_scope(migrated_any_db) as session:
        def customer(ext: str, tier: str | None, score: float | None, attributes: dict[str, object],
                     anonymised: bool = False) -> Customer:
            row = Customer(external_id=ext, name=ext, tier=tier, tier_score=score, tier_updated_at=EARLIER,
                           attributes=attributes, created_at=EARLIER, updated_at=EARLIER,
                           anonymised_at=EARLIER if anonymised else None)
            session.add(row)
            session.flush()
            return row

        up = customer("UP", "silver", 35.0, ATTRIBUTES)  # scores 64.63 → gold (see test_tier_model)
        customer("SAME", "potential", 10.0, {})  # scores 10 → stays potential
        customer("NEW", None, None, {})  # first tier: potential
        customer("GONE", "gold", 60.0, {}, anonymised=True)  # purged customers are not re-tiered
        assert up.id is not None
        for n in (1, 2):
            session.add(Policy(external_id=f"P{n}", customer_id=up.id, product_line="motor", annual_premium=1000,
                               start_date=date(2025, 6, 1), expiry_date=date(2026, 5, 31), status="active"))
        session.add(Policy(external_id="P3", customer_id=up.id, product_line="health", annual_premium=5000,
                           start_date=date(2024, 6, 1), expiry_date=date(2025, 5, 31), status="lapsed"))
        session.add(Claim(external_id="CL1", customer_id=up.id, filed_at=EARLIER, amount=800))

    result = retier(load_tier_config(), at=AT, url=migrated_any_db, chunk_size=2)  # chunks of 2: 2 chunks
    assert (result.scored, result.changed, result.up, result.down, result.initial, result.events) == (3, 2, 1, 0, 1, 2)
    assert dict(result.tiers) == {"gold": 1, "potential": 2}

    with session_scope(migrated_any_db) as session:
        history = session.exec(select(TierChange).order_by(col(TierChange.id))).all()
        assert [(h.from_tier, h.to_tier, h.score) for h in history] == [("silver", "gold", 64.63),
                                                                         (None, "potential", 10.0)]
        assert history[0].dimensions == {"ltv": 54.5, "activity": 50.0, "risk": 77.0, "social": 80.0, "basic": 83.8}
        events = session.exec(select(Event).order_by(col(Event.id))).all()
        assert [(e.external_id, e.type, e.data["direction"]) for e in events] == [
            ("tier.changed:UP:20260401T020000Z", "tier.changed", "up"),
            ("tier.changed:NEW:20260401T020000Z", "tier.changed", "initial"),
        ]
        assert events[0].data == {"from_tier": "silver", "to_tier": "gold", "direction": "up", "score": 64.63}
        rows = {c.external_id: c for c in session.exec(select(Customer)).all()}
        assert (rows["UP"].tier, rows["UP"].tier_score, rows["UP"].tier_updated_at) == ("gold", 64.63, AT)
        assert (rows["SAME"].tier, rows["SAME"].tier_updated_at) == ("potential", EARLIER)  # untouched
        assert rows["GONE"].tier == "gold"

    again = retier(load_tier_config(), at=AT, url=migrated_any_db)
    assert (again.scored, again.changed, again.events) == (3, 0, 0)
    with session_scope(migrated_any_db) as session:
        assert len(session.exec(select(TierChange)).all()) == 2
        assert len(session.exec(select(Event)).all()) == 2


def test_dry_run_writes_nothing(db_url: str) -> None:
    with session_scope(db_url) as session:
        session.add(Customer(external_id="X", name="X", created_at=EARLIER, updated_at=EARLIER))
    result = retier(load_tier_config(), at=AT, url=db_url, dry_run=True)
    assert (result.changed, result.initial) == (1, 1)
    with session_scope(db_url) as session:
        assert session.exec(select(Customer)).one().tier is None
        assert session.exec(select(TierChange)).all() == []
