"""One rule for a condition on a field the record lacks (``engine.language.conditions``): a missing
field has no value, so a test asking for a value fails and one asking for its absence passes.
The reference evaluator and the durable-rules one used by the planner agree on every operator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engine.language.conditions import epoch_seconds, evaluate
from engine.language.journey_model import Condition
from engine.planning.rules import evaluate_many

NOW = epoch_seconds(datetime(2027, 3, 1, tzinfo=UTC))

# (operator, value, result on a missing field)
ON_MISSING: list[tuple[str, Any, bool]] = [
    ("eq", "property", False),
    ("ne", "property", True),
    ("in", ["property", "motor"], False),
    ("not_in", ["property", "motor"], True),
    ("not_in", [], True),
    ("in", [], False),
    ("lt", 5, False),
    ("le", 5, False),
    ("gt", 5, False),
    ("ge", 5, False),
    ("contains", "prop", False),
    ("within_last", "30d", False),
    ("older_than", "30d", False),
    ("within_next", "30d", False),
    ("exists", None, False),
    ("missing", None, True),
]

FIELD = {"eq": "claim.product_line", "ne": "claim.product_line", "in": "claim.product_line",
         "not_in": "claim.product_line", "contains": "claim.product_line", "lt": "claim.amount",
         "le": "claim.amount", "gt": "claim.amount", "ge": "claim.amount", "within_last": "claim.settled_at",
         "older_than": "claim.settled_at", "within_next": "claim.settled_at", "exists": "claim.product_line",
         "missing": "claim.product_line"}

FACTS: list[dict[str, Any]] = [
    {},  # the claim has none of these fields
    {"claim.product_line": None, "claim.amount": None, "claim.settled_at": None},  # stored as NULL
    {"claim.product_line": "property", "claim.amount": 3, "claim.settled_at": datetime(2027, 2, 20, tzinfo=UTC)},
    {"claim.product_line": "health", "claim.amount": 9, "claim.settled_at": datetime(2026, 1, 1, tzinfo=UTC)},
]


def leaf(op: str, value: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"field": FIELD[op], "op": op}
    if value is not None:
        raw["value"] = value
    return raw


@pytest.mark.parametrize(("op", "value", "expected"), ON_MISSING)
def test_a_missing_field_has_no_value(op: str, value: Any, expected: bool) -> None:
    cond = Condition.model_validate(leaf(op, value))
    negated = Condition.model_validate({"not": leaf(op, value)})
    for fact in FACTS[:2]:
        assert evaluate(cond, fact, NOW) is expected
        assert evaluate(negated, fact, NOW) is not expected
    assert evaluate_many(cond, FACTS[:2], [NOW, NOW]) == [expected, expected]
    assert evaluate_many(negated, FACTS[:2], [NOW, NOW]) == [not expected, not expected]


@pytest.mark.parametrize(("op", "value", "expected"), ON_MISSING)
def test_both_evaluators_agree_with_and_without_the_field(op: str, value: Any, expected: bool) -> None:
    for raw in (leaf(op, value), {"not": leaf(op, value)},
                {"all": [leaf(op, value), {"field": FIELD[op], "op": "exists"}]},
                {"any": [leaf(op, value), {"field": FIELD[op], "op": "missing"}]}):
        cond = Condition.model_validate(raw)
        assert evaluate_many(cond, FACTS, [NOW] * len(FACTS)) == [evaluate(cond, f, NOW) for f in FACTS], raw


@pytest.mark.parametrize(("positive", "negative"), [("eq", "ne"), ("in", "not_in"), ("exists", "missing")])
def test_each_negative_operator_is_exactly_not_its_positive(positive: str, negative: str) -> None:
    value = {"eq": "property", "in": ["property", "life"], "exists": None}[positive]
    neg = Condition.model_validate(leaf(negative, value))
    not_pos = Condition.model_validate({"not": leaf(positive, value)})
    for fact in FACTS:
        assert evaluate(neg, fact, NOW) == evaluate(not_pos, fact, NOW), fact
    assert evaluate_many(neg, FACTS, [NOW] * len(FACTS)) == evaluate_many(not_pos, FACTS, [NOW] * len(FACTS))


def test_the_post_claim_offer_gate_lets_an_unknown_product_line_through() -> None:
    gate = Condition.model_validate({"field": "claim.product_line", "op": "ne", "value": "property"})
    facts: list[dict[str, Any]] = [{"claim.product_line": None}, {"claim.product_line": "property"},
                                    {"claim.product_line": "motor"}]
    assert [evaluate(gate, f, NOW) for f in facts] == [True, False, True]
    assert evaluate_many(gate, facts, [NOW] * 3) == [True, False, True]
