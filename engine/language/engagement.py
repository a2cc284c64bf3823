"""A customer's engagement level (basic | active | at_risk), which picks the channel list of a
``channels: by_engagement`` send from ``engagement_channels`` in config/delivery.yaml.

The programme's channel strategy puts active customers on app push first and customers at risk of
leaving on the channels that reach them surely. The level is read from the tier model's activity
score (SPEC §2; the same formula ``engine.loop.tier_model`` weighs into the tier) and the churn
risk of the customer's latest ``churn.warning``:

- ``at_risk``: churn risk at or above ``engagement.at_risk_churn`` (checked first);
- ``active``: activity score at or above ``engagement.active_activity``;
- ``basic``: everyone else, including a customer with no activity recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from engine.language.journey_model import Condition

Level = Literal["basic", "active", "at_risk"]
LEVELS: tuple[Level, ...] = ("basic", "active", "at_risk")
# Activity sub-scores (SPEC §2): attribute → (weight, the count worth the full 100).
ACTIVITY_PARTS: dict[str, tuple[float, float]] = {
    "logins_90d": (0.35, 30),
    "session_minutes_90d": (0.25, 300),
    "interactions_90d": (0.20, 20),
    "replies_90d": (0.20, 8),
}
CHURN_FIELD = "customer.churn_risk"
# What the planner must load for a by_engagement send: a condition reading those fields, added to
# a journey's conditions only for loading (``engine.planning.journeys_in_force.conditions_of``).
FIELDS_READ = Condition(all=[Condition(field=f"customer.attributes.{name}", op="exists") for name in ACTIVITY_PARTS]
                        + [Condition(field=CHURN_FIELD, op="exists")])


def _number(value: Any) -> float:
    # As the tier model reads a count: a bool is 0/1, a non-number or a non-finite one is none.
    if isinstance(value, bool | int | float) and math.isfinite(value):
        return max(0.0, float(value))
    return 0.0


def activity_score(attributes: Mapping[str, Any]) -> float:
    """The activity dimension, 0–100, unrounded: each count linear up to its full mark, then flat."""
    return sum(weight * min(100.0, 100.0 * _number(attributes.get(name)) / full)
               for name, (weight, full) in ACTIVITY_PARTS.items())


def level(activity: float, churn_risk: float | None, active_activity: float, at_risk_churn: float) -> Level:
    if churn_risk is not None and churn_risk >= at_risk_churn:
        return "at_risk"
    return "active" if activity >= active_activity else "basic"


def engagement_facts(fact: Mapping[str, Any]) -> tuple[float, float | None]:
    """(activity score, churn risk) from planner facts (``customer.attributes.<name>``,
    ``customer.churn_risk``): what a ``by_engagement`` send carries to the delivery rules."""
    attributes = {name: fact.get(f"customer.attributes.{name}") for name in ACTIVITY_PARTS}
    churn = fact.get(CHURN_FIELD)
    return activity_score(attributes), float(churn) if isinstance(churn, int | float) else None
