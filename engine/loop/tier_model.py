"""The tier score of SPEC §2: five dimension scores, each 0–100, weighted by ``config/tiers.yaml``.

- ltv: premium per year (0.55, log scale), policies in force (0.15, full at 4), product
  lines held (0.15, full at 3), tenure years (0.15, full at 10). Premium, policies and
  lines come from the policy table (status ``active``) when the customer has policy rows;
  tenure from ``attributes.customer_since``, else ``tenure_years``, else the first policy.
- activity (attributes): ``logins_90d`` (0.35, full at 30), ``session_minutes_90d``
  (0.25, 300), ``interactions_90d`` (0.20, 20), ``replies_90d`` (0.20, 8).
- risk: ``risk_questionnaire`` 0–100 (0.7); claim history 100 − 30 per claim filed (0.3),
  claims counted in the claim table (or ``attributes.claims_count``, whichever is higher).
- social (attributes): ``referrals`` (0.6, full at 3), ``community_participation`` (or
  ``community_events``; 0.4, full at 6).
- basic (attributes): ``age_band`` (0.4), ``occupation`` (0.35), ``city_tier`` or else
  ``region`` (0.25), looked up in the tables below.

"Full at N" means linear from 0 to 100 at N and flat above, so one broker with fifty
policies does not swamp the scale and every figure can be explained to ops ("2 of
4 policies → 50"). A missing count is "none recorded" (0); an unknown category
scores 40. Dimension scores are rounded to 0.1, the weighted score to 0.01.

This is the one formula: ``journeys retier`` applies it, and the synthetic book
(``engine.demo.scoring``) is scored with it from the same figures retier reads back,
so re-tiering a freshly seeded book moves no one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from engine.language.engagement import activity_score
from engine.language.settings_model import DIMENSIONS, TierConfig
from store.clock import out_of_range

Breakpoints = Sequence[tuple[float, float]]

# Premium (yuan a year) → premium sub-score, interpolated on a log scale between these
# points: the reference mid segment (500–2000 yuan, about 62% of customers) spans 25–60.
PREMIUM_POINTS: Breakpoints = ((100, 5), (500, 25), (2000, 60), (8000, 90), (20000, 100))

AGE_BANDS: Mapping[str, float] = {"18-25": 40, "26-35": 70, "36-45": 100, "46-55": 90, "56-65": 60, "66+": 40}
# Occupation groups by income stability and protection needs, as the programme's underwriters
# rank them; both the Chinese labels and the English codes imports use are accepted.
OCCUPATIONS: Mapping[str, float] = {
    "企业管理者": 100, "专业人士": 90, "公务员": 85, "教师": 75, "医护人员": 80, "工程师": 80,
    "个体经营者": 65, "销售": 55, "服务业": 45, "工人": 40, "自由职业": 45, "退休": 50, "学生": 30,
    "business_owner": 100, "executive": 100, "professional": 90, "civil_servant": 85, "doctor": 85,
    "engineer": 80, "teacher": 75, "office_worker": 65, "self_employed": 65, "worker": 40, "retired": 50,
    "student": 30,
}
# Region: the city tier (``city_tier``) or the city itself (``region``); first-tier cities score highest.
CITY_TIERS: Mapping[str, float] = {"tier1": 100, "new_tier1": 80, "tier2": 65, "tier3": 50}
REGIONS: Mapping[str, float] = {"北京": 100, "上海": 100, "深圳": 95, "广州": 90, "杭州": 80, "成都": 70}
UNKNOWN_BASIC = 40.0


def cap(value: float, full_at: float) -> float:
    """0 → 0, ``full_at`` or more → 100, linear in between."""
    if value <= 0:
        return 0.0
    return min(100.0, 100.0 * value / full_at)


def premium_score(premium: float) -> float:
    if premium <= 0:
        return 0.0
    lo_p, lo_s = 0.0, 0.0
    for p, s in PREMIUM_POINTS:
        if premium <= p:
            if lo_p <= 0:
                return s * premium / p
            frac = (math.log(premium) - math.log(lo_p)) / (math.log(p) - math.log(lo_p))
            return lo_s + frac * (s - lo_s)
        lo_p, lo_s = p, s
    return 100.0


@dataclass(frozen=True)
class ScoringInputs:
    """What one customer's score is computed from (gathered in bulk by ``retier``).

    The stored figures (policies, claims) win over the copies in ``attributes``;
    ``None`` means "not known from the tables", so the attribute is used.
    """

    attributes: Mapping[str, Any] = field(default_factory=dict)
    annual_premium: float | None = None  # sum over policies in force
    policy_count: int | None = None  # policies in force
    product_lines: int | None = None  # distinct product lines in force
    first_policy_start: date | None = None
    claims_count: int | None = None


@dataclass(frozen=True)
class TierScore:
    score: float
    tier: str
    dimensions: dict[str, float]


def _num(attributes: Mapping[str, Any], key: str) -> float:
    value = attributes.get(key)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return 0.0


def _tenure_years(inputs: ScoringInputs, today: date) -> float:
    since = inputs.attributes.get("customer_since")
    if isinstance(since, str):
        try:
            # Whole years, as the customer would say it ("with us for 3 years").
            day = date.fromisoformat(since[:10])
        except ValueError:
            day = None
        if day is not None and out_of_range(day) is None:
            return float((today - day).days // 365)
    if "tenure_years" in inputs.attributes:
        return _num(inputs.attributes, "tenure_years")
    if inputs.first_policy_start is not None:
        return float((today - inputs.first_policy_start).days // 365)
    return 0.0


def _claim_history(claims: float) -> float:
    # A clean record is worth most; each claim takes some of it away.
    return max(0.0, 100.0 - 30.0 * claims)


def dimension_scores(inputs: ScoringInputs, today: date) -> dict[str, float]:
    """The five dimension scores (0–100, rounded to 0.1) of one customer."""
    a = inputs.attributes

    def stored_or_attribute(stored: float | None, key: str) -> float:
        return float(stored) if stored is not None else _num(a, key)

    ltv = (
        0.55 * premium_score(stored_or_attribute(inputs.annual_premium, "annual_premium"))
        + 0.15 * cap(stored_or_attribute(inputs.policy_count, "policy_count"), 4)
        + 0.15 * cap(stored_or_attribute(inputs.product_lines, "product_lines"), 3)
        + 0.15 * cap(_tenure_years(inputs, today), 10)
    )
    # One formula with the engagement level that picks channels (engine.language.engagement).
    activity = activity_score(a)
    questionnaire = min(100.0, max(0.0, _num(a, "risk_questionnaire")))
    claims = max(float(inputs.claims_count or 0), _num(a, "claims_count"))
    risk = 0.7 * questionnaire + 0.3 * _claim_history(claims)
    community = _num(a, "community_participation") or _num(a, "community_events")
    social = 0.6 * cap(_num(a, "referrals"), 3) + 0.4 * cap(community, 6)
    basic = (
        0.4 * AGE_BANDS.get(str(a.get("age_band")), UNKNOWN_BASIC)
        + 0.35 * OCCUPATIONS.get(str(a.get("occupation")), UNKNOWN_BASIC)
        + 0.25 * CITY_TIERS.get(str(a.get("city_tier")), REGIONS.get(str(a.get("region")), UNKNOWN_BASIC))
    )
    scores = {"ltv": ltv, "activity": activity, "risk": risk, "social": social, "basic": basic}
    return {d: round(scores[d], 1) for d in DIMENSIONS}


def score(inputs: ScoringInputs, config: TierConfig, today: date) -> TierScore:
    """Weighted score and the tier it falls in under ``config``."""
    dims = dimension_scores(inputs, today)
    total = round(sum(config.weights[d] * dims[d] for d in DIMENSIONS), 2)
    return TierScore(score=total, tier=config.tier_for(total), dimensions=dims)
