"""A simple tier score from the scoring inputs kept in ``Customer.attributes`` (SPEC §2).

Each of the five dimensions is normalised to 0–100 from the inputs below; the tier
score is the weighted sum with the weights of ``config/tiers.yaml`` and the tier is
the first whose threshold the score reaches. The seeder uses it so that a synthetic
book's tiers follow from its data; a re-tiering job may use it or replace it.

Inputs (keys of ``attributes``; a missing key counts as 0 / unknown):

- ltv: ``annual_premium`` (yuan), ``policy_count``, ``product_lines`` (distinct lines held), ``tenure_years``
- activity: ``logins_90d``, ``session_minutes_90d``, ``interactions_90d``, ``replies_90d``
- risk: ``risk_questionnaire`` (0–100), ``claims_count`` (claims filed, all time)
- social: ``referrals``, ``community_participation`` (events/posts taken part in, last year)
- basic: ``age_band``, ``occupation`` (a code of ``OCCUPATIONS``), ``city_tier`` (``region`` is the city's name)

Names and codes follow those ``engine.tier_model`` (the re-tiering model) reads, so
a re-tiering run understands a seeded book's attributes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from engine.settings_model import DIMENSIONS, TierConfig

AGE_BANDS: dict[str, float] = {
    "18-25": 40,
    "26-35": 70,
    "36-45": 100,
    "46-55": 90,
    "56-65": 60,
    "66+": 40,
}

# Occupation groups with how much they weigh in the basic-attributes dimension
# (income stability and protection needs, as the programme's underwriters rank them).
OCCUPATIONS: dict[str, float] = {
    "business_owner": 100,
    "executive": 100,
    "professional": 90,
    "civil_servant": 85,
    "doctor": 85,
    "engineer": 80,
    "teacher": 75,
    "office_worker": 65,
    "self_employed": 65,
    "worker": 40,
    "retired": 50,
    "student": 30,
}

# Region: the city tier of the customer's city (``city_tier``); first-tier cities score highest.
CITY_TIERS: dict[str, float] = {"tier1": 100, "new_tier1": 80, "tier2": 65, "tier3": 50}
_UNKNOWN_BASIC = 40.0

# Premium (yuan per year) → LTV premium sub-score, interpolated on a log scale between
# these points: the programme's mid segment (500–2000 yuan) spans 25–60.
_PREMIUM_POINTS: tuple[tuple[float, float], ...] = ((100, 5), (500, 25), (2000, 60), (8000, 90), (20000, 100))


def _num(attrs: Mapping[str, Any], key: str) -> float:
    value = attrs.get(key)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return 0.0


def _cap(value: float, full_at: float) -> float:
    """0 → 0, ``full_at`` or more → 100, linear in between."""
    if value <= 0:
        return 0.0
    return min(100.0, 100.0 * value / full_at)


def premium_score(premium: float) -> float:
    if premium <= 0:
        return 0.0
    lo_p, lo_s = 0.0, 0.0
    for p, s in _PREMIUM_POINTS:
        if premium <= p:
            if lo_p <= 0:
                return s * premium / p
            frac = (math.log(premium) - math.log(lo_p)) / (math.log(p) - math.log(lo_p))
            return lo_s + frac * (s - lo_s)
        lo_p, lo_s = p, s
    return 100.0


def _claim_history_score(claims: float) -> float:
    # A clean record is worth most; each claim takes some of it away.
    return max(0.0, 100.0 - 30.0 * claims)


def dimension_scores(attrs: Mapping[str, Any]) -> dict[str, float]:
    """The five dimension scores (0–100, rounded to 0.1) from a customer's attributes."""
    ltv = (
        0.55 * premium_score(_num(attrs, "annual_premium"))
        + 0.15 * _cap(_num(attrs, "policy_count"), 4)
        + 0.15 * _cap(_num(attrs, "product_lines"), 3)
        + 0.15 * _cap(_num(attrs, "tenure_years"), 10)
    )
    activity = (
        0.35 * _cap(_num(attrs, "logins_90d"), 30)
        + 0.25 * _cap(_num(attrs, "session_minutes_90d"), 300)
        + 0.20 * _cap(_num(attrs, "interactions_90d"), 20)
        + 0.20 * _cap(_num(attrs, "replies_90d"), 8)
    )
    questionnaire = min(100.0, max(0.0, _num(attrs, "risk_questionnaire")))
    risk = 0.7 * questionnaire + 0.3 * _claim_history_score(_num(attrs, "claims_count"))
    social = 0.6 * _cap(_num(attrs, "referrals"), 3) + 0.4 * _cap(_num(attrs, "community_participation"), 6)
    basic = (
        0.4 * AGE_BANDS.get(str(attrs.get("age_band")), _UNKNOWN_BASIC)
        + 0.35 * OCCUPATIONS.get(str(attrs.get("occupation")), _UNKNOWN_BASIC)
        + 0.25 * CITY_TIERS.get(str(attrs.get("city_tier")), _UNKNOWN_BASIC)
    )
    scores = {"ltv": ltv, "activity": activity, "risk": risk, "social": social, "basic": basic}
    return {d: round(scores[d], 1) for d in DIMENSIONS}


def weighted_score(dimensions: Mapping[str, float], config: TierConfig) -> float:
    return round(sum(config.weights[d] * dimensions.get(d, 0.0) for d in DIMENSIONS), 2)


def score_customer(attrs: Mapping[str, Any], config: TierConfig) -> tuple[str, float, dict[str, float]]:
    """(tier, score, dimension scores) for a customer's attributes under ``config``."""
    dims = dimension_scores(attrs)
    score = weighted_score(dims, config)
    return config.tier_for(score), score, dims


def age_band(age: int) -> str:
    for band, upper in (("18-25", 25), ("26-35", 35), ("36-45", 45), ("46-55", 55), ("56-65", 65)):
        if age <= upper:
            return band
    return "66+"
