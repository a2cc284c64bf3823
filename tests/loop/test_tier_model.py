"""The weighted tier score of SPEC §2, worked out by hand."""

from __future__ import annotations

from datetime import date

import pytest

from engine.language.journey_registry import load_tier_config
from engine.loop.tier_model import ScoringInputs, dimension_scores, premium_score, score

TODAY = date(2026, 4, 1)
ATTRIBUTES = {
    "customer_since": "2020-01-01", "logins_90d": 15, "session_minutes_90d": 150, "interactions_90d": 10,
    "replies_90d": 4, "risk_questionnaire": 80, "referrals": 3, "community_events": 3,
    "age_band": "36-45", "occupation": "教师", "region": "成都",
}
INPUTS = ScoringInputs(attributes=ATTRIBUTES, annual_premium=2000, policy_count=2, product_lines=1, claims_count=1)


def test_dimension_scores_and_weighted_score() -> None:
    # ltv: premium 2000 → 60; 2 of 4 policies → 50; 1 of 3 lines → 33.33; tenure 2020-01-01..2026-04-01 =
    #      2282 days → 6 whole years → 60.  0.55×60 + 0.15×50 + 0.15×33.33 + 0.15×60 = 33 + 7.5 + 5 + 9 = 54.5
    # activity: 15/30, 150/300, 10/20, 4/8 → all 50 → 50
    # risk: 0.7×80 + 0.3×(100 − 30×1 claim) = 56 + 21 = 77
    # social: 0.6×(3/3 → 100) + 0.4×(3/6 → 50) = 60 + 20 = 80
    # basic: 0.4×100 (36-45) + 0.35×75 (教师) + 0.25×70 (成都) = 40 + 26.25 + 17.5 = 83.75 → 83.8
    assert dimension_scores(INPUTS, TODAY) == {"ltv": 54.5, "activity": 50.0, "risk": 77.0, "social": 80.0,
                                               "basic": 83.8}
    # 0.30×54.5 + 0.25×50 + 0.20×77 + 0.15×80 + 0.10×83.8 = 16.35 + 12.5 + 15.4 + 12 + 8.38 = 64.63 → gold (50..70)
    result = score(INPUTS, load_tier_config(), TODAY)
    assert (result.score, result.tier) == (64.63, "gold")


def test_nothing_known_scores_the_floor() -> None:
    # risk: questionnaire 0, clean claim record 100 → 30; basic: unknown everything → 40.
    # 0.20×30 + 0.10×40 = 10 → potential.
    result = score(ScoringInputs(), load_tier_config(), TODAY)
    assert (result.score, result.tier, result.dimensions["risk"], result.dimensions["basic"]) == (
        10.0, "potential", 30.0, 40.0,
    )


def test_stored_policy_figures_win_over_attribute_copies() -> None:
    stale = ScoringInputs(attributes={"annual_premium": 20000, "policy_count": 4}, annual_premium=0, policy_count=0)
    assert dimension_scores(stale, TODAY)["ltv"] == 0.0  # the policies lapsed: the attribute copy is stale


@pytest.mark.parametrize(("premium", "expected"), [(0, 0.0), (50, 2.5), (500, 25.0), (2000, 60.0), (30000, 100.0)])
def test_premium_scale_puts_the_mid_segment_at_25_to_60(premium: float, expected: float) -> None:
    assert premium_score(premium) == pytest.approx(expected)
