"""A figure meets its programme target as SPEC §8 words it: churn < 5%, CSAT ≥ 85%, complaint response ≤ 24 h.

The report judged every "lower is better" target with ≤, so a churn of exactly 5% was marked met while
the label beside it read "churn < 5%"; the console's page judged the cells of its table with a copy of
that rule. ``engine.loop.reports.meets`` is the one judgement: the target check, the CLI's tables and
the page's cells.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from engine.loop.metrics import TARGETS
from engine.loop.reports import build_report, meets
from store.db import session_scope
from store.models import Customer, Policy

SIGNS: dict[str, Callable[[float, float], bool]] = {"≥": operator.ge, ">": operator.gt, "≤": operator.le,
                                                    "<": operator.lt}
START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
CREATED = datetime(2025, 1, 1, tzinfo=UTC)


def _as_labelled(key: str) -> Callable[[float, float], bool]:
    """The comparison the target's label states (the words SPEC §8 uses)."""
    [sign] = [s for s in SIGNS if f" {s} " in TARGETS[key]["label"]]
    return SIGNS[sign]


@given(key=st.sampled_from(sorted(TARGETS)), steps=st.integers(-3, 3))
def test_a_figure_meets_its_target_as_the_label_says(key: str, steps: int) -> None:
    goal = TARGETS[key]["target"]
    value = round(goal + steps * 0.0001, 4)  # the target itself and the figures a rounding step either side
    assert meets(key, value) is _as_labelled(key)(value, goal)
    assert meets(key, None) is None


def test_a_churn_of_exactly_five_percent_misses_the_target(db_url: str) -> None:
    with session_scope(db_url) as session:
        for i in range(20):  # twenty in force on 1 January; one lapsed: 5% lost
            customer = Customer(external_id=f"C{i}", name=f"C{i}", tier="gold", created_at=CREATED,
                                updated_at=CREATED)
            session.add(customer)
            session.flush()
            assert customer.id is not None
            session.add(Policy(external_id=f"P{i}", customer_id=customer.id, product_line="motor",
                               annual_premium=1000, start_date=date(2025, 6, 1), expiry_date=date(2026, 5, 31),
                               status="lapsed" if i == 0 else "active"))
    report = build_report(START, END, now=END)
    assert report["total"]["churn_rate"] == 0.05
    [check] = [c for c in report["target_check"] if c["metric"] == "churn_rate"]
    assert (check["value"], check["met"]) == (0.05, False)
