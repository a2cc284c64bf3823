"""A figure meets its programme target as SPEC §8 words it: churn < 5%, CSAT ≥ 85%, complaint response ≤ 24 h.

The report judged every "lower is better" target with ≤, so a churn of exactly 5% was marked met while
the label beside it read "churn < 5%"; the console's page judged the cells of its table with a copy of
that rule. ``engine.loop.reports.meets`` is the one judgement: the target check, the CLI's tables and
the page's cells.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from engine.loop.metrics import TARGETS
from engine.loop.reports import build_report, meets
from tests.loop.churn_book import END, START, book_losing_one

SIGNS: dict[str, Callable[[float, float], bool]] = {"≥": operator.ge, ">": operator.gt, "≤": operator.le,
                                                    "<": operator.lt}


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
    book_losing_one(db_url, 20)  # twenty in force on 1 January; one lapsed: 5% lost
    report = build_report(START, END, now=END)
    assert report["total"]["churn_rate"] == 0.05
    [check] = [c for c in report["target_check"] if c["metric"] == "churn_rate"]
    assert (check["value"], check["met"]) == (0.05, False)
