"""The churn chart, on the console's report page and in ``journeys report --out``, judges a tier by the
tier review's threshold in force (``config/tiers.yaml`` review.churn_threshold), which the report says.

The page drew a fixed 15% line: with the threshold set to 10%, a tier losing 12.5% of its customers was
flagged by the tier review (and by the CLI's chart) but shown as merely above target on the page.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from console.ops_charts import report_charts
from engine.loop.reports import build_report
from tests.loop.churn_book import END, START, book_losing_one
from tests.review_support import config_copy


def test_the_page_judges_churn_by_the_threshold_in_force(db_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    tiers = config_copy(tmp_path, monkeypatch) / "tiers.yaml"
    text = tiers.read_text(encoding="utf-8")
    assert "churn_threshold: 0.15" in text
    tiers.write_text(text.replace("churn_threshold: 0.15", "churn_threshold: 0.1"), encoding="utf-8")
    book_losing_one(db_url, 8)  # gold, all in force on 1 January; one of the eight lapsed: 12.5% lost

    report = build_report(START, END, "tier", now=END)
    assert report["tier_groups"]["gold"]["churn_rate"] == 0.125
    assert report["churn_threshold"] == 0.1
    churn = {chart.key: chart for chart in report_charts(report)}["churn"]
    assert [(bar.label, bar.tone) for bar in churn.bars] == [("gold", "bad")]
    assert [rule.value for rule in churn.rules if rule.kind == "threshold"] == [0.1]
