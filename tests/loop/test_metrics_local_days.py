"""Policy dates are days of the programme's calendar (Asia/Shanghai), and so are a report's days.

The console reads a period as local days: November in Shanghai starts at 2026-10-31 16:00 UTC. The
figures that compare policy dates with the period (in force at the start, churn, renewals due) must
use the local day of its start and end, not the UTC one, which is the day before. A differential
test: the figures ``compute_metrics`` returns against a count written here from the rows themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.language.settings_review import programme_zone
from engine.loop.metrics import churn_by_tier, compute_metrics
from engine.loop.tables import customer_t, policy_t
from store.db import get_engine
from store.models import Customer
from tests.db_support import module_sqlite_book

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 1, tzinfo=SHANGHAI)
END = datetime(2026, 12, 1, tzinfo=SHANGHAI)
FIRST_DAY, LAST_DAY = date(2026, 11, 1), date(2026, 11, 30)
CREATED = datetime(2025, 1, 1, tzinfo=UTC)
# Days around both ends of the period, where a UTC reading of its bounds is a day early.
NEAR_ENDS = st.sampled_from([FIRST_DAY + timedelta(days=d) for d in range(-2, 3)]
                            + [LAST_DAY + timedelta(days=d) for d in range(-2, 3)])
STATUSES = st.sampled_from(["active", "renewed", "lapsed", "cancelled"])
POLICY = st.tuples(NEAR_ENDS, NEAR_ENDS, STATUSES).map(lambda p: (min(p[0], p[1]), max(p[0], p[1]), p[2]))


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from module_sqlite_book(tmp_path_factory, "local-days")


def _write(url: str, book: list[list[tuple[date, date, str]]]) -> None:
    with get_engine(url).begin() as conn:
        conn.execute(sa.delete(policy_t))
        conn.execute(sa.delete(customer_t))
        conn.execute(sa.insert(customer_t), [
            Customer(id=i + 1, external_id=f"C{i}", name=f"C{i}", tier="gold", branch="SH", created_at=CREATED,
                     updated_at=CREATED).model_dump()
            for i in range(len(book))
        ])
        rows = [
            {"external_id": f"P{i}-{j}", "customer_id": i + 1, "product_line": "motor", "annual_premium": 1000,
             "start_date": start, "expiry_date": expiry, "status": status}
            for i, policies in enumerate(book) for j, (start, expiry, status) in enumerate(policies)
        ]
        if rows:
            conn.execute(sa.insert(policy_t), rows)


def _expected(book: list[list[tuple[date, date, str]]]) -> dict[str, Any]:
    in_force = [p for p in book if any(start <= FIRST_DAY <= expiry for start, expiry, _ in p)]
    churned = [p for p in in_force if not any(status in ("active", "renewed") for _, _, status in p)]
    due = [status for p in book for _, expiry, status in p if FIRST_DAY <= expiry <= LAST_DAY]
    decided = [s for s in due if s != "active"]
    return {
        "in_force_at_start": len(in_force), "churned": len(churned),
        "renewals_due": len(due), "renewed": due.count("renewed"),
        "renewal_rate": round(due.count("renewed") / len(decided), 4) if decided else None,
    }


@settings(max_examples=40, deadline=None)
@given(book=st.lists(st.lists(POLICY, min_size=0, max_size=2), min_size=1, max_size=6))
def test_policy_dates_are_read_on_the_programme_calendar(url: str, book: list[list[tuple[date, date, str]]]) -> None:
    assert programme_zone(get_engine(url)) == "Asia/Shanghai"
    _write(url, book)
    total = compute_metrics(START, END, now=END, url=url).total
    expected = _expected(book)
    # A family with no rows at all leaves its counts empty (None) rather than 0.
    assert {key: total[key] if total[key] is not None or key == "renewal_rate" else 0 for key in expected} == expected
    gold = churn_by_tier(START, END, url=url).get("gold", {"in_force_at_start": 0, "churned": 0})
    assert (gold["in_force_at_start"], gold["churned"]) == (expected["in_force_at_start"], expected["churned"])


def test_a_policy_that_ended_the_day_before_is_not_in_force_nor_due(url: str) -> None:
    # Lapsed on 31 October, renewed on 30 November, started on 1 November: in local days, one renewal
    # due and made, two customers in force and none lost. Read in UTC days the period starts on
    # 31 October: the lapsed one was due (renewal 0%) and in force, and counted as lost (churn 50%).
    _write(url, [
        [(date(2025, 11, 1), date(2026, 10, 31), "lapsed")],
        [(date(2025, 12, 1), date(2026, 11, 30), "renewed")],
        [(date(2026, 11, 1), date(2027, 10, 31), "active")],
    ])
    total = compute_metrics(START, END, now=END, url=url).total
    assert (total["renewals_due"], total["renewal_rate"]) == (1, 1.0)
    assert (total["in_force_at_start"], total["churned"], total["churn_rate"]) == (2, 0, 0.0)
