"""The month's report finds a touch's replies and an enrollment's first touch by index, whatever the book's shape.

Task outcomes leave ``touch_id`` empty. Where they are most of the outcomes (a branch whose agents call
more than customers reply), SQLite's statistics count the empty ones as one value, and the old index of
``touch_id`` read as no better than the table: the report's touch figures scanned every outcome for every
touch of the month (over ten minutes for a branch of 200,000 customers). The statement the report page
sends is EXPLAINed as SQLite runs it on such a book: it must search migration 0019's index of the outcomes
that name a touch, and read no outcome table whole. Likewise the first touch of each enrollment, among
customers who had touches long before (migration 0020).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from store.db import get_engine, session_scope
from store.models import Enrollment, Outcome, Touch, TouchStatus
from tests.console.conftest import Seed, login
from tests.console.test_desk_queries_indexed import plans

TOUCHES = 40
TASK_OUTCOMES = 2000
OLD_TOUCHES = 400


def _called_more_than_replied(db_url: str, seed: Seed) -> None:
    """Touches of the last days, no reply yet, and many task outcomes (no touch)."""
    customers = list(seed.customers.values())
    with session_scope(db_url) as s:
        touches = []
        for i in range(TOUCHES):
            at = seed.now - timedelta(days=1, hours=i)
            touches.append(Touch(key=f"rep:{i}", customer_id=customers[i % len(customers)],
                                 journey_id="birthday-care", journey_version="v1", step_id="greeting",
                                 occurrence=f"r{i}", category="service", channel="sms", template="birthday_greeting",
                                 planned_for=at, due_at=at, status=TouchStatus.DELIVERED, sent_at=at, created_at=at))
        s.add_all(touches)
        # Each customer's enrollments of the month, one per touch, and the touches they had before it.
        s.add_all(Enrollment(customer_id=t.customer_id, journey_id=t.journey_id, journey_version="v1",
                             occurrence=t.occurrence, step_id="greeting", state="exited", entered_at=t.planned_for)
                  for t in touches)
        s.add_all(Touch(key=f"old:{i}", customer_id=customers[i % len(customers)], journey_id="birthday-care",
                        journey_version="v1", step_id="greeting", occurrence=f"old{i}", category="service",
                        channel="sms", template="birthday_greeting", planned_for=seed.now - timedelta(days=400),
                        due_at=seed.now - timedelta(days=400), status=TouchStatus.DELIVERED,
                        sent_at=seed.now - timedelta(days=400), created_at=seed.now - timedelta(days=400))
                  for i in range(OLD_TOUCHES))
    rows: list[dict[str, Any]] = [
        {"customer_id": customers[i % len(customers)], "kind": "task:reached", "detail": {},
         "occurred_at": seed.now - timedelta(hours=i % 500)} for i in range(TASK_OUTCOMES)]
    with get_engine(db_url).begin() as conn:
        conn.execute(sa.insert(Outcome.__table__), rows)  # type: ignore[attr-defined]
        conn.exec_driver_sql("ANALYZE")


def test_the_reports_touch_figures_find_replies_by_the_touch(
    client: TestClient, db_url: str, seed: Seed, statements: list[tuple[str, Any]],
) -> None:
    _called_more_than_replied(db_url, seed)
    login(client, "olga")
    statements.clear()
    month = f"start={(seed.now - timedelta(days=30)).date()}&end={(seed.now + timedelta(days=1)).date()}"
    page = client.get(f"/ops/report?{month}")
    assert page.status_code == 200
    # The table of tiers the report by tier reads is the connection's own and gone by now: the report's
    # statements by itself (the same query, its customers joined instead) are the ones EXPLAINed.
    found = plans(db_url, [(s, p) for s, p in statements if "report_customer_tier" not in s], "outcome")
    acted = [p for s, p in found.items() if "outcome.touch_id = touch.id" in s and "outcome.kind IN" in s]
    assert len(acted) == 1, list(found)
    for plan in acted:
        assert "SEARCH outcome USING INDEX ix_outcome_touch_kind (touch_id=? AND kind=?)" in plan, plan
    assert [p for p in found.values() if "SCAN outcome" in p] == []


def test_the_reports_first_touch_reads_each_enrollments_own_touches(
    client: TestClient, db_url: str, seed: Seed, statements: list[tuple[str, Any]],
) -> None:
    """An enrollment's first touch is searched by its customer, journey and occurrence (migration 0020): by
    the customer alone, each enrollment of the month read every touch its customer ever had."""
    _called_more_than_replied(db_url, seed)
    login(client, "olga")
    statements.clear()
    month = f"start={(seed.now - timedelta(days=30)).date()}&end={(seed.now + timedelta(days=1)).date()}"
    assert client.get(f"/ops/report?{month}").status_code == 200
    found = plans(db_url, [(s, p) for s, p in statements if "report_customer_tier" not in s], "enrollment")
    first = [p for s, p in found.items() if "min(touch.sent_at)" in s]
    assert len(first) == 1, list(found)
    assert "SEARCH touch USING COVERING INDEX ix_touch_enrollment_sent (customer_id=? AND journey_id=? AND " \
           "occurrence=?)" in first[0], first
    assert "SCAN touch" not in first[0], first
