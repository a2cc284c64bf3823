"""What journey conditions may refer to: the fields of each fact and the known event types.

Conditions are data, so a typo in a field name must be caught at validation time
rather than silently evaluating to "missing". Everything a condition can name is
listed here (the event types are read from ``config/events.yaml``); ``customer.attributes.*``
and ``event.data.*`` of an unknown event type are the only open namespaces.
``OPTIONAL_FIELDS`` names the fields a record may lack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from engine.language.event_types import FieldKind, FieldsByType
from engine.language.journey_model import attribute_name_problem

CUSTOMER_FIELDS: dict[str, FieldKind] = {
    "tier": "str",
    "tier_score": "float",
    "branch": "str",
    "locale": "str",
    "timezone": "str",
    "birthday": "date",
    "age": "int",
    "consent_sms": "bool",
    "consent_wechat": "bool",
    "consent_email": "bool",
    "has_phone": "bool",
    "has_email": "bool",
    "has_wechat": "bool",
    "preferred_channels": "list",
    "last_active_at": "datetime",
    "created_at": "datetime",
    "tenure_days": "int",
    "product_lines": "list",
    "policy_count": "int",
    "active_policy_count": "int",
    "annual_premium_total": "float",
    "claim_count": "int",
    "days_inactive": "int",
    "logins_90d": "int",
    "replies_90d": "int",
    "marketing_touches_7d": "int",
    "last_nps": "int",
    "churn_risk": "float",
}

POLICY_FIELDS: dict[str, FieldKind] = {
    "product_line": "str",
    "annual_premium": "float",
    "start_date": "date",
    "expiry_date": "date",
    "status": "str",
    "renewed": "bool",
    "premium_due_date": "date",
    "grace_period_end": "date",
}

CLAIM_FIELDS: dict[str, FieldKind] = {
    "amount": "float",
    "status": "str",
    "filed_at": "datetime",
    "settled_at": "datetime",
    "product_line": "str",
}

EVENT_FIELDS: dict[str, FieldKind] = {"type": "str", "occurred_at": "datetime"}

# Fields a record may lack although its kind has them, per record kind, with the reason a
# journey author needs to hear. A condition on a missing field follows the rule in
# ``engine.language.conditions`` (a missing field has no value: ``ne``/``not_in``/``missing``
# pass, every other test fails); ``journeys validate`` warns where an audience or entry
# condition tests one of these without also testing it with ``exists`` or ``missing``.
# ``customer.attributes.*`` and ``event.data.*`` are open: whatever was given, nothing more.
OPTIONAL_FIELDS: dict[str, dict[str, str]] = {
    "customer": {
        "tier": "a customer not yet scored, or imported with an empty tier, has no tier",
        "tier_score": "a customer not yet scored has no tier score",
        "birthday": "birthday is optional in the import",
        "age": "a customer without a birthday has no age",
        "last_active_at": "last_active_at is optional in the import",
        "days_inactive": "a customer without last_active_at has no days_inactive",
        "last_nps": "a customer who never answered an NPS survey has no last_nps",
        "churn_risk": "a customer without a churn.warning event has no churn_risk",
    },
    "policy": {
        "premium_due_date": "premium_due_date is optional in the policy import",
        "grace_period_end": "grace_period_end is optional in the policy import",
    },
    "claim": {
        "product_line": "a claim imported without product_line and without a policy has no product line",
        "settled_at": "a claim not yet settled has no settled_at",
        # A claim.* event naming a claim the store does not hold puts only the event's own
        # amount and product_line in scope.
        "status": "a claim.* event for a claim not in the store gives no status",
        "filed_at": "a claim.* event for a claim not in the store gives no filed_at",
        "amount": "a claim.* event without data.amount, for a claim not in the store, gives no amount",
    },
}

# Event types other systems (and the product itself) emit, with their data fields: declared as
# data in ``config/events.yaml`` (``engine.language.event_types``), read as the file in force.
EVENT_TYPES: Mapping[str, dict[str, FieldKind]] = FieldsByType()

# Chinese holidays a journey may anchor on (the keys journey files name), with their English
# names as the `holidays` package spells them (templates' fallback label lookup reads these).
# The dates never come from those labels: see HOLIDAY_RULES and engine.language.festivals.
HOLIDAYS: dict[str, str] = {
    "new_year": "New Year's Day",
    "spring_festival": "Chinese New Year (Spring Festival)",
    "qingming": "Tomb-Sweeping Day",
    "labour_day": "Labor Day",
    "dragon_boat": "Dragon Boat Festival",
    "mid_autumn": "Mid-Autumn Festival",
    "national_day": "National Day",
}


@dataclass(frozen=True)
class HolidayRule:
    """Which calendar defines a holiday: a Gregorian or lunar month and day, or a solar term."""

    calendar: Literal["gregorian", "lunar", "solar_term"]
    month: int = 0
    day: int = 0
    term: str = ""  # the solar term's Chinese name, e.g. 清明


HOLIDAY_RULES: dict[str, HolidayRule] = {
    "new_year": HolidayRule("gregorian", 1, 1),
    "spring_festival": HolidayRule("lunar", 1, 1),  # 正月初一
    "qingming": HolidayRule("solar_term", term="清明"),  # the sun at 15° ecliptic longitude
    "labour_day": HolidayRule("gregorian", 5, 1),
    "dragon_boat": HolidayRule("lunar", 5, 5),  # 五月初五
    "mid_autumn": HolidayRule("lunar", 8, 15),  # 八月十五
    "national_day": HolidayRule("gregorian", 10, 1),
}

# Scopes a condition can be evaluated in; each names the facts present there.
Scope = Literal["customer", "policy", "claim", "event"]


def field_kind(path: str, scopes: set[str], event_types: set[str]) -> FieldKind | str:
    """The kind of ``path`` in the given scopes, or a message saying why it is unknown."""
    head, _, rest = path.partition(".")
    if not rest:
        return f"unknown field {path!r}: write <fact>.<field>, e.g. customer.tier"
    if head == "customer":
        if rest.startswith("attributes.") and len(rest) > len("attributes."):
            return attribute_name_problem(path) or "any"
        if rest in CUSTOMER_FIELDS:
            return CUSTOMER_FIELDS[rest]
        return _unknown(path, "customer", CUSTOMER_FIELDS)
    table = {"policy": POLICY_FIELDS, "claim": CLAIM_FIELDS}.get(head)
    if table is not None:
        if head not in scopes:
            return f"field {path!r} is not available here: this journey has no {head} in scope"
        return table[rest] if rest in table else _unknown(path, head, table)
    if head == "event":
        if "event" not in scopes:
            return (f"field {path!r} is not available here: only an event entry, a wait_for's when and the steps "
                    "after its on_event see an event")
        if rest in EVENT_FIELDS:
            return EVENT_FIELDS[rest]
        if rest.startswith("data."):
            name = rest[len("data.") :]
            known: dict[str, FieldKind] = {}
            for event_type in event_types:
                known.update(EVENT_TYPES.get(event_type, {}))
            if name in known:
                return known[name]
            types = ", ".join(sorted(event_types)) or "?"
            return f"unknown field {path!r} for event {types}: known data fields are {', '.join(sorted(known))}"
        return f"unknown field {path!r}: events have type, occurred_at and data.<field>"
    return f"unknown field {path!r}: conditions read customer.*, policy.*, claim.* or event.*"


def _unknown(path: str, head: str, table: dict[str, FieldKind]) -> str:
    import difflib

    name = path.split(".", 1)[1]
    hint = difflib.get_close_matches(name, list(table), n=1, cutoff=0.75)
    if hint:
        return f"unknown field {path!r} (did you mean '{head}.{hint[0]}'?)"
    return f"unknown field {path!r}: {head} fields are {', '.join(sorted(table))}"


def optional_field(path: str) -> str | None:
    """Why the record behind ``path`` (``claim.product_line``) may lack it, or None if it always has it."""
    head, _, rest = path.partition(".")
    return OPTIONAL_FIELDS.get(head, {}).get(rest)
