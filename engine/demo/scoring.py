"""Tier scores for the synthetic book, computed by ``engine.loop.tier_model``: one formula for both.

The seeder used to carry its own copy of the SPEC §2 formula; a copy drifts (the two
already read tenure and claims differently), and then the first ``journeys retier``
after seeding moves customers for no reason in their data. Here the seeder only turns
a drafted customer into ``ScoringInputs`` the way ``engine.loop.retier`` gathers them from
the stored rows (policy figures from the policies in force, claims from the claim
table, tenure from ``attributes.customer_since`` at the as-of date), so seeding then
re-tiering at the load moment changes no tier.

Inputs are the keys of ``Customer.attributes`` that ``engine.loop.tier_model`` documents;
the seeder draws occupations from ``OCCUPATION_CODES`` (the English codes that model
knows; imports may also use the Chinese labels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from engine.language.settings_model import TierConfig
from engine.loop.tier_model import ScoringInputs, score

# Occupation codes the tier model scores (``engine.loop.tier_model.OCCUPATIONS``), English form.
OCCUPATION_CODES: tuple[str, ...] = (
    "business_owner", "executive", "professional", "civil_servant", "doctor", "engineer", "teacher",
    "office_worker", "self_employed", "worker", "retired", "student",
)

IN_FORCE = "active"  # as engine.loop.retier.IN_FORCE_STATUS


def scoring_inputs(
    attributes: Mapping[str, Any],
    policies: Sequence[Mapping[str, Any]] | None = None,
    claims: Sequence[Mapping[str, Any]] | None = None,
) -> ScoringInputs:
    """What ``engine.loop.retier`` would gather for a customer with these attributes, policy and claim rows.

    Without policy rows the attribute copies are used, as retier does for a customer
    imported without policies."""
    if not policies:
        return ScoringInputs(attributes=attributes, claims_count=len(claims) if claims else None)
    in_force = [p for p in policies if p["status"] == IN_FORCE]
    return ScoringInputs(
        attributes=attributes,
        annual_premium=round(sum(float(p["annual_premium"]) for p in in_force), 2),
        policy_count=len(in_force),
        product_lines=len({p["product_line"] for p in in_force}),
        first_policy_start=min(p["start_date"] for p in policies),
        claims_count=len(claims) if claims else None,
    )


def score_customer(
    attributes: Mapping[str, Any],
    config: TierConfig,
    today: date,
    policies: Sequence[Mapping[str, Any]] | None = None,
    claims: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[str, float, dict[str, float]]:
    """(tier, score, dimension scores) under ``config`` at ``today``, by ``engine.loop.tier_model``."""
    result = score(scoring_inputs(attributes, policies, claims), config, today)
    return result.tier, result.score, result.dimensions


def age_band(age: int) -> str:
    for band, upper in (("18-25", 25), ("26-35", 35), ("36-45", 45), ("46-55", 55), ("56-65", 65)):
        if age <= upper:
            return band
    return "66+"
