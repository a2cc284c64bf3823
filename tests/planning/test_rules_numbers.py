"""durable-rules and the reference evaluator agree on every number a fact can hold.

durable-rules' JSON reader takes no number written with an exponent, and Python writes one for
floats under 0.0001 or from 10**16 on (``1e-07``, ``1e+16``): an imported ``attr.x`` of 0.0000001,
a premium of 1e16 or an event's ``data.amount`` of 1e-9 failed the whole evaluation ("Could not
delete state, error code: 309"), and the customer was left out of the plan."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.language.conditions import evaluate
from engine.language.journey_model import Condition
from engine.planning.rules import evaluate_many

FIELD = "customer.attributes.x"
# Literals a journey may compare with (engine.language.journey_bounds.condition_number_problem).
literals = st.one_of(st.integers(-10**15, 10**15),
                     st.floats(min_value=0.0001, max_value=1e15) | st.floats(min_value=-1e15, max_value=-0.0001),
                     st.just(0.0))
values = st.one_of(st.floats(allow_nan=False), st.integers(-10**30, 10**30),
                   st.sampled_from([1e-7, -1e-9, 1e16, 1e300, 5e-324, 2**53 + 1, -(2**63)]))


@given(op=st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]), literal=literals,
       fact_values=st.lists(values, max_size=6))
def test_numbers_of_any_size_are_judged_as_the_reference_judges_them(
        op: str, literal: float, fact_values: list[Any]) -> None:
    cond = Condition.model_validate({"field": FIELD, "op": op, "value": literal})
    facts = [{FIELD: v} for v in [*fact_values, 3]]
    assert evaluate_many(cond, facts, [0.0] * len(facts)) == [evaluate(cond, f, 0.0) for f in facts]


def test_a_list_holding_such_a_number_and_the_facts_after_it() -> None:
    within = Condition.model_validate({"field": FIELD, "op": "in", "value": [1, 2, 0.5]})
    facts: list[dict[str, Any]] = [{FIELD: 1e-7}, {FIELD: 1}, {FIELD: float("inf")}, {FIELD: 0.5}, {FIELD: 1e20}]
    assert evaluate_many(within, facts, [0.0] * len(facts)) == [False, True, False, True, False]
