"""The churn chart, on the console's report page and in ``journeys report --out``, judges a tier by the
tier review's threshold in force (``config/tiers.yaml`` review.churn_threshold), which the report says.

The page drew a fixed 15% line: with the threshold set to 10%, a tier losing 12.5% of its customers was
flagged by the tier review (and by the CLI's chart) but shown as merely above target on the page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from console.ops_charts import report_charts
from engine.loop.reports import build_report
from store.db import session_scope
from store.models import Customer, Policy
from tests.review_support import config_copy

START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
CREATED = datetime(2025, 1, 1, tzinfo=UTC)


def test_the_page_judges_churn_by_the_threshold_in_force(db_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    tiers = config_copy(tmp_path, monkeypatch) / "tiers.yaml"
    text = tiers.read_text(encoding="utf-8")
    assert "churn_threshold: 0.15" in text
    tiers.write_text(text.replace("churn_threshold: 0.15", "churn_threshold: 0.1"), encoding="utf-8")
    with session_scope(db_url) as session:
        for i in range(8):  # gold, all in force on 1 January; one of the eight lapsed: 12.5% lost
            customer = Customer(external_id=f"C{i}", name=f"C{i}", tier="gold", created_at=CREATED,
                                updated_at=CREATED)
            session.add(customer)
            session.flush()
            assert customer.id is not None
            session.add(Policy(external_id=f"P{i}", customer_id=customer.id, product_line="motor",
                               annual_premium=1000, start_date=date(2025, 6, 1), expiry_date=date(2026, 5, 31),
                               status="lapsed" if i == 0 else "active"))

    report = build_report(START, END, "tier", now=END)
    assert report["tier_groups"]["gold"]["churn_rate"] == 0.125
    assert report["churn_threshold"] == 0.1
    churn = {chart.key: chart for chart in report_charts(report)}["churn"]
    assert [(bar.label, bar.tone) for bar in churn.bars] == [("gold", "bad")]
    assert [rule.value for rule in churn.rules if rule.kind == "threshold"] == [0.1]
