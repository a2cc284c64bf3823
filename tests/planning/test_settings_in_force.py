"""Review before going live for the delivery and tier settings, on the production path: a changed
``config/delivery.yaml`` or ``config/tiers.yaml`` changes nothing the planner plans, simulate forecasts,
explain shows, an event plans or retiering decides until someone approves it; then it does, and a
rollback brings the earlier settings back. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from engine.language.journey_review import versions
from engine.loop.events import emit_event
from engine.loop.retier import retier
from engine.planning.explain import explain
from engine.planning.planner import plan
from engine.planning.simulate import simulate
from store.clock import simulated_time
from store.db import get_engine, session_scope
from store.models import Customer, Touch
from tests.console.test_review import offer
from tests.plan_support import Book, utc
from tests.review_support import (
    approve,
    config_copy,
    installed,
    roll_back,
    set_setting,
    submit,
    submit_and_approve,
)

DELIVERY, TIERS = "setting:delivery.yaml", "setting:tiers.yaml"
# Holds the offer's 10:00 (Shanghai) to 12:00 once in force.
LATE_MORNING_QUIET = '{start: "09:00", end: "12:00"}'

# The offer, sent at once on a login.
WELCOME = offer("silver").replace('{schedule: {cron: "0 10 * * *"}}', "{event: {type: app.login}}")


def due_on(book: Book, external_id: str, day: date) -> list[datetime]:
    """When the customer's touches planned on ``day`` (UTC) are due, as stored."""
    with Session(get_engine(book.url)) as session:
        rows = session.exec(
            select(Touch.planned_for, Touch.due_at)
            .join(Customer, col(Touch.customer_id) == col(Customer.id))
            .where(Customer.external_id == external_id)
        ).all()
    return sorted(due.replace(tzinfo=None) for planned, due in rows if planned.date() == day)


def plan_day(book: Book, day: int) -> list[datetime]:
    plan(utc(2027, 3, day, 12), utc(2027, 3, day), url=book.url)
    return due_on(book, "S1", date(2027, 3, day))


def forecast_moves(book: Book, day: int) -> int:
    report = simulate(utc(2027, 3, day), utc(2027, 3, day + 1), url=book.url).to_json()
    moves: int = report["totals"]["quiet_hour_moves"]
    return moves


def explained_due(book: Book, day: int) -> list[str]:
    report = explain("S1", utc(2027, 3, day, 1), url=book.url)
    return [
        t["due_at"]
        for t in report["touches"]
        if t["source"] == "dry run" and t["planned_for"].startswith(f"2027-03-0{day}")
    ]


@pytest.fixture
def config(book: Book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped configuration with room for a touch a day: edited before anything ran, so it is the
    configuration found at install, approved as it is."""
    config = config_copy(tmp_path, monkeypatch)
    set_setting(config / "delivery.yaml", "marketing_cap", "50")
    return config


def utc_naive(day: int, hour: int) -> datetime:
    return utc(2027, 3, day, hour).replace(tzinfo=None)


def test_a_delivery_setting_is_planned_forecast_and_explained_only_once_approved(book: Book, config: Path) -> None:
    book.journey("offer", offer("silver"))
    book.customer(external_id="S1", tier="silver")
    assert plan_day(book, 1) == [utc_naive(1, 2)]  # 10:00 in Shanghai: the settings found at install
    installed(book.url)  # whichever reader ran first

    set_setting(config / "delivery.yaml", "quiet_hours", LATE_MORNING_QUIET)
    pending = submit(book.url, DELIVERY)
    assert forecast_moves(book, 2) == 0
    assert explained_due(book, 2) == ["2027-03-02T10:00:00+08:00"]
    assert plan_day(book, 2) == [utc_naive(2, 2)]  # pending: the approved quiet hours still hold

    submit_and_approve(book.url, DELIVERY)  # a no-op submit, then the approval
    assert forecast_moves(book, 3) == 1
    assert explained_due(book, 3) == ["2027-03-03T12:00:00+08:00"]
    assert plan_day(book, 3) == [utc_naive(3, 4)]

    with session_scope(book.url) as session:
        [shipped] = [v for v in versions(session, DELIVERY) if v.id != pending]
    roll_back(book.url, shipped.id)
    assert forecast_moves(book, 4) == 0
    assert explained_due(book, 4) == ["2027-03-04T10:00:00+08:00"]
    assert plan_day(book, 4) == [utc_naive(4, 2)]


def test_an_event_plans_with_the_delivery_settings_in_force(book: Book, config: Path) -> None:
    book.journey("offer", WELCOME)
    for name in ("E1", "E2"):
        book.customer(external_id=name)

    def login(name: str, hour: int) -> list[datetime]:
        moment = utc(2027, 3, 1, hour)
        with simulated_time(lambda: moment):
            emit_event("app.login", name, {}, occurred_at=moment, url=book.url)
        return due_on(book, name, date(2027, 3, 1))

    assert login("E1", 1) == [utc_naive(1, 1)]  # 09:00 in Shanghai: lands the settings found at install
    installed(book.url)
    set_setting(config / "delivery.yaml", "quiet_hours", LATE_MORNING_QUIET)
    # On the events' clock: the version in force is the one that went in force last.
    with simulated_time(lambda: utc(2027, 3, 1, 1, 30)):
        submit(book.url, DELIVERY)
    assert login("E2", 2) == [utc_naive(1, 2)]  # 10:00, sent at once: the change is pending
    with simulated_time(lambda: utc(2027, 3, 1, 1, 45)):
        submit_and_approve(book.url, DELIVERY)
    book.customer(external_id="E3")
    assert login("E3", 2) == [utc_naive(1, 4)]  # held to 12:00 once approved


def test_retiering_uses_the_tier_settings_in_force(book: Book, config: Path) -> None:
    book.customer(external_id="T1", tier="potential")
    at = utc(2027, 3, 1, 2)
    assert retier(at=at, url=book.url).tiers == {"potential": 1}
    installed(book.url)
    with session_scope(book.url) as session:
        score = session.exec(select(Customer.tier_score).where(Customer.external_id == "T1")).one()
    assert score is not None and 4 <= score < 30  # potential under the shipped thresholds, diamond under these
    set_setting(config / "tiers.yaml", "thresholds", "{diamond: 4, platinum: 3, gold: 2, silver: 1, potential: 0}")
    pending = submit(book.url, TIERS)
    assert retier(at=at, url=book.url, dry_run=True).changed == 0  # pending: nothing changes
    assert retier(at=at, url=book.url).changed == 0
    approve(book.url, pending)
    assert retier(at=at, url=book.url, dry_run=True).tiers == {"diamond": 1}
    assert retier(at=at, url=book.url).up == 1

    with session_scope(book.url) as session:
        [shipped] = [v for v in versions(session, TIERS) if v.id != pending]
    roll_back(book.url, shipped.id)
    assert retier(at=at, url=book.url).down == 1


def test_the_weekly_tier_review_judges_by_the_threshold_in_force(book: Book, config: Path) -> None:
    """Gold churn of 25% is over the shipped 15% threshold and under an edited 30% one: until approved, the
    review still finds gold over its threshold; once approved, it does not, and a rollback restores it."""
    from engine.loop.monitoring import run_tier_review
    from tests.loop.test_monitoring import AT, _customer

    with session_scope(book.url) as session:
        _customer(session, "G1", "gold", 60, status="lapsed")
        for ext in ("G2", "G3", "G4"):
            _customer(session, ext, "gold", 55)
    installed(book.url)

    def gold_over(at: datetime) -> bool:
        row = next(r for r in run_tier_review(at=at, url=book.url).tiers if r.tier == "gold")
        assert row.churn_rate == 0.25
        return row.over_threshold

    set_setting(config / "tiers.yaml", "review", "{window: 90d, churn_threshold: 0.3}")
    pending = submit(book.url, TIERS)
    assert gold_over(AT) is True  # pending: judged by the approved 15%
    approve(book.url, pending)
    assert gold_over(AT) is False  # 25% is under the approved 30%
    with session_scope(book.url) as session:
        [shipped] = [v for v in versions(session, TIERS) if v.id != pending]
    roll_back(book.url, shipped.id)
    assert gold_over(AT) is True
