"""Tier coverage of a period counts the tiers customers held at its end, not the tiers they hold now.

Coverage read ``customer.tier``, the current tier: re-tiering in April changed the coverage reported for
the first quarter (an untiered customer tiered on 10 April raised Q1's coverage from 5/6 to 6/6), so a
past period's report did not stay the same. It now reads the tier history at the period's end, as the
grouping by tier reads it at the start.
"""

from __future__ import annotations

from datetime import UTC, datetime

from engine.loop.reports import build_report
from store.db import session_scope
from store.models import Customer, TierChange
from tests.closed_loop_book import END, NOW, START, build


def _retier(url: str, customer_id: int, to_tier: str, at: datetime) -> None:
    with session_scope(url) as session:
        customer = session.get(Customer, customer_id)
        assert customer is not None
        session.add(TierChange(customer_id=customer_id, from_tier=customer.tier, to_tier=to_tier, score=50,
                               changed_at=at))
        customer.tier = to_tier


def test_a_later_retier_leaves_a_past_periods_coverage_alone(migrated_any_db: str) -> None:
    with session_scope(migrated_any_db) as session:
        ids = build(session)
    before = build_report(START, END, "tier", now=NOW, url=migrated_any_db)
    assert (before["total"]["customers"], before["total"]["tier_coverage"]) == (6, 0.8333)  # C6 untiered

    _retier(migrated_any_db, ids["C6"], "silver", datetime(2026, 4, 10, tzinfo=UTC))  # after the quarter
    after = build_report(START, END, "tier", now=NOW, url=migrated_any_db)
    for key in ("total", "groups"):
        assert after[key] == before[key], key
    # The quarter after it sees the new tier.
    q2 = build_report(END, datetime(2026, 7, 1, tzinfo=UTC), now=NOW, url=migrated_any_db)
    assert q2["total"]["tier_coverage"] == 1.0


def test_a_customer_tiered_within_the_period_is_covered_at_its_end(migrated_any_db: str) -> None:
    with session_scope(migrated_any_db) as session:
        ids = build(session)
    _retier(migrated_any_db, ids["C6"], "gold", datetime(2026, 3, 1, tzinfo=UTC))
    report = build_report(START, END, "tier", now=NOW, url=migrated_any_db)
    assert report["total"]["tier_coverage"] == 1.0
    # Untiered at the start (its group), tiered at the end.
    assert (report["groups"]["none"]["customers"], report["groups"]["none"]["tier_coverage"]) == (1, 1.0)
