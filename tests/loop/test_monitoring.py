"""Daily churn warnings and the weekly tier review with dynamic adjustment (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from engine.language.journey_registry import load_tier_config
from engine.loop.monitoring import churn_warning_check, run_tier_review
from store.db import get_engine, session_scope
from store.models import AgentTask, AuditLog, Customer, Event, KeyValue, Policy

AT = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)  # review window 90d → starts 2026-01-01 02:00


def _customer(session: Session, ext: str, tier: str, score: float, status: str = "active",
              last_active: datetime | None = None) -> Customer:
    customer = Customer(external_id=ext, name=ext, tier=tier, tier_score=score, created_at=AT - timedelta(days=900),
                        updated_at=AT, last_active_at=last_active)
    session.add(customer)
    session.flush()
    assert customer.id is not None
    session.add(Policy(external_id=f"P-{ext}", customer_id=customer.id, product_line="health", annual_premium=1500,
                       start_date=date(2025, 6, 1), expiry_date=date(2026, 12, 31), status=status))
    return customer


def _count(session: Session, model: type, *where: object) -> int:
    return len(session.exec(select(model).where(*where)).all())  # type: ignore[call-overload]


def test_gold_churn_over_15_percent_adjusts_exactly_once_per_window(migrated_any_db: str) -> None:
    config = load_tier_config()
    with session_scope(migrated_any_db) as session:
        # gold: 4 in force at the window start, G1's policy lapsed → churn 1/4 = 25% > 15%.
        _customer(session, "G1", "gold", 60, status="lapsed")
        for ext in ("G2", "G3", "G4"):
            _customer(session, ext, "gold", 55)
        # silver: 3 in force, none lost → 0%.
        for ext in ("S1", "S2", "S3"):
            _customer(session, ext, "silver", 35)

    first = run_tier_review(config, at=AT, url=migrated_any_db)
    gold = next(r for r in first.tiers if r.tier == "gold")
    silver = next(r for r in first.tiers if r.tier == "silver")
    assert (gold.in_force_at_start, gold.churned, gold.churn_rate, gold.over_threshold) == (4, 1, 0.25, True)
    assert (gold.adjusted, gold.journeys, gold.events) == (True, ["retention-boost-gold"], 3)  # G2, G3, G4 still hold
    assert (silver.churn_rate, silver.over_threshold, silver.adjusted) == (0.0, False, False)

    # Re-run the same review, and the next weekly one: both inside the same 90-day window.
    second = run_tier_review(config, at=AT, url=migrated_any_db)
    weekly = run_tier_review(config, at=AT + timedelta(days=7), url=migrated_any_db)
    for again in (second, weekly):
        row = next(r for r in again.tiers if r.tier == "gold")
        assert (row.over_threshold, row.adjusted, row.already_adjusted) == (True, False, True)
        assert row.task_id == gold.task_id

    with session_scope(migrated_any_db) as session:
        tasks = session.exec(select(AgentTask).where(AgentTask.journey_id == "tier-review")).all()
        assert len(tasks) == 1
        task = tasks[0]
        anchor = session.get(Customer, task.customer_id)
        assert anchor is not None and anchor.external_id == "G1"  # the lost gold customer
        assert (task.queue, task.priority, task.status) == ("ops", 1, "open")
        assert task.notes is not None and "churn 25.0%" in task.notes and "retention-boost-gold" in task.notes
        switch = session.get(KeyValue, "journey_enabled:retention-boost-gold")
        assert switch is not None and switch.value["enabled"] is True and switch.value["tier"] == "gold"
        assert _count(session, Event, Event.type == "tier.adjustment") == 3
        event = session.exec(select(Event).where(Event.type == "tier.adjustment")).first()
        assert event is not None
        assert event.data == {"tier": "gold", "churn_rate": 0.25, "journey": "retention-boost-gold"}
        assert _count(session, AuditLog, AuditLog.action == "tier_adjustment") == 1
        assert session.get(KeyValue, "tier_adjustment:silver") is None

    # A review after the window has passed adjusts again (churn still over the threshold).
    later = run_tier_review(config, at=AT + timedelta(days=91), url=migrated_any_db)
    assert next(r for r in later.tiers if r.tier == "gold").adjusted is True
    with session_scope(migrated_any_db) as session:
        assert _count(session, AgentTask, AgentTask.journey_id == "tier-review") == 2


def test_extra_journeys_switch_off_when_churn_is_back_under_the_threshold(migrated_any_db: str) -> None:
    config = load_tier_config()
    with session_scope(migrated_any_db) as session:
        lost = _customer(session, "G1", "gold", 60, status="lapsed")
        _customer(session, "G2", "gold", 55)
    run_tier_review(config, at=AT, url=migrated_any_db)
    # G1 comes back (renews): gold churn 0/2.
    with get_engine(migrated_any_db).begin() as conn:
        conn.execute(sa.update(Policy.__table__).where(Policy.__table__.c.customer_id == lost.id)  # type: ignore[attr-defined]
                     .values(status="active"))
    review = run_tier_review(config, at=AT + timedelta(days=7), url=migrated_any_db)
    assert review.switched_off == ["retention-boost-gold"]
    with session_scope(migrated_any_db) as session:
        switch = session.get(KeyValue, "journey_enabled:retention-boost-gold")
        assert switch is not None and switch.value["enabled"] is False


def test_churn_warnings_for_falling_activity_once(migrated_any_db: str) -> None:
    with session_scope(migrated_any_db) as session:
        w1 = _customer(session, "W1", "gold", 60, last_active=AT - timedelta(days=35))  # 6 logins → 0
        w2 = _customer(session, "W2", "gold", 60, last_active=AT - timedelta(days=2))  # steady 2 a month
        _customer(session, "W3", "silver", 40, last_active=AT - timedelta(days=45))  # went quiet
        _customer(session, "W4", "silver", 40, last_active=AT - timedelta(days=100))  # long dormant
        w5 = _customer(session, "W5", "silver", 40, status="lapsed", last_active=AT - timedelta(days=40))  # left
        logins = [(w1, AT - timedelta(days=d)) for d in (35, 40, 50, 60, 70, 80)]
        logins += [(w2, AT - timedelta(days=d)) for d in (5, 20, 40, 55, 70, 85)]
        logins += [(w5, AT - timedelta(days=d)) for d in (40, 50, 60)]
        for n, (customer, when) in enumerate(logins):
            assert customer.id is not None
            session.add(Event(external_id=f"login-{n}", type="app.login", customer_id=customer.id,
                              occurred_at=when, received_at=when))

    first = churn_warning_check(at=AT, url=migrated_any_db)
    assert (first.candidates, first.warned) == (2, 2)  # W1 (drop) and W3 (went quiet)
    with session_scope(migrated_any_db) as session:
        warnings = session.exec(
            select(Event).where(Event.type == "churn.warning").order_by(col(Event.external_id))
        ).all()
        assert [e.external_id for e in warnings] == ["churn.warning:W1:2026-04-01", "churn.warning:W3:2026-04-01"]
        # W1: 0 logins in 30 days against 6 in the 60 before (3 a month) → drop 1 − 0/3 = 1.0; inactive 35 days.
        assert warnings[0].data == {"activity_drop": 1.0, "days_inactive": 35, "risk": 1.0}
        # W3: no login history; quiet for 45 days → risk 45/90 = 0.5.
        assert warnings[1].data == {"activity_drop": 0.0, "days_inactive": 45, "risk": 0.5}

    again = churn_warning_check(at=AT, url=migrated_any_db)
    next_day = churn_warning_check(at=AT + timedelta(days=1), url=migrated_any_db)
    assert (again.warned, next_day.warned) == (0, 0)  # same day: same ids; next day: warned lately
