"""The report's charts as geometry for ``ops_report_charts.html`` to draw as inline SVG.

The same four charts as ``engine.loop.charts`` draws to PNG for the CLI (reach by tier, task SLA
compliance, churn by tier against the dynamic-adjustment threshold and the programme target,
NPS per week), computed here as rectangles, lines and points so the page needs no image files,
no scripts and no fonts beyond the page's own. Words are the template's, as everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from store.models import TIERS

W, H = 420, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 14, 34
# config/tiers.yaml review.churn_threshold's default, for a report that does not say the one in force.
CHURN_THRESHOLD = 0.15
CHURN_TARGET = 0.05
SLA_LINE = 0.9


@dataclass
class Bar:
    label: str
    value: float | None
    x: float
    y: float
    w: float
    h: float
    tone: str  # good | bad | warn | neutral


@dataclass
class Rule:
    y: float
    kind: str  # threshold | target | expected | zero
    value: float


@dataclass
class Chart:
    key: str  # reach | sla | churn | nps
    bars: list[Bar] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    points: list[tuple[float, float, str, float, int]] = field(default_factory=list)  # x, y, label, nps, answers
    ticks: list[tuple[float, str]] = field(default_factory=list)  # y, text
    width: int = W
    height: int = H

    @property
    def line(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, *_ in self.points)


def _ordered(groups: dict[str, dict[str, Any]]) -> list[str]:
    rank = {t: i for i, t in enumerate(TIERS)}
    return sorted(groups, key=lambda g: (rank.get(g, len(TIERS)), g))


def _scale(top: float, bottom: float = 0.0) -> Any:
    span = (top - bottom) or 1.0
    return lambda v: TOP + (H - TOP - BOTTOM) * (1 - (v - bottom) / span)


def _bars(key: str, labels: list[str], values: list[float | None], top: float, tone: Any) -> Chart:
    chart = Chart(key)
    y_of = _scale(top)
    slot = (W - LEFT - RIGHT) / max(len(labels), 1)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = y_of(value or 0.0)
        chart.bars.append(Bar(label, value, LEFT + i * slot + slot * 0.15, y, slot * 0.7, y_of(0.0) - y, tone(value)))
    for k in range(5):
        v = top * k / 4
        chart.ticks.append((y_of(v), f"{v:.0%}"))
    return chart


def report_charts(report: dict[str, Any]) -> list[Chart]:
    tiers = report.get("tier_groups") or {}
    labels = _ordered(tiers)
    reach = _bars("reach", labels, [tiers[g].get("reach_rate") for g in labels], 1.0, lambda v: "neutral")

    groups = report.get("groups") or {}
    sla_labels = [g for g in _ordered(groups) if groups[g].get("sla_compliance") is not None] or ["all"]
    sla_values = [(groups.get(g) or report["total"]).get("sla_compliance") for g in sla_labels]
    sla = _bars("sla", sla_labels, sla_values, 1.0,
                lambda v: "neutral" if v is None else ("good" if v >= SLA_LINE else "bad"))
    sla.rules.append(Rule(_scale(1.0)(SLA_LINE), "expected", SLA_LINE))

    churn_labels = [g for g in labels if tiers[g].get("churn_rate") is not None]
    churn_values = [tiers[g]["churn_rate"] for g in churn_labels]
    # The tier review's threshold in force (build_report says it), as the CLI's chart draws it.
    threshold = float(report.get("churn_threshold") or CHURN_THRESHOLD)
    top = max([threshold * 1.6, *[(v or 0) * 1.25 for v in churn_values]])
    churn = _bars("churn", churn_labels, churn_values, top, lambda v: "neutral" if v is None else (
        "bad" if v > threshold else "warn" if v >= CHURN_TARGET else "good"))
    churn.rules += [Rule(_scale(top)(threshold), "threshold", threshold),
                    Rule(_scale(top)(CHURN_TARGET), "target", CHURN_TARGET)]

    nps = Chart("nps")
    y_of = _scale(100.0, -100.0)
    trend = report.get("nps_trend") or []
    slot = (W - LEFT - RIGHT) / max(len(trend), 1)
    for i, bucket in enumerate(trend):
        nps.points.append((LEFT + slot * (i + 0.5), y_of(bucket["nps"]), str(bucket["from"])[5:10], bucket["nps"],
                           int(bucket.get("answers") or 0)))
    nps.rules.append(Rule(y_of(0.0), "zero", 0.0))
    nps.ticks = [(y_of(v), f"{v:+.0f}" if v else "0") for v in (-100.0, -50.0, 0.0, 50.0, 100.0)]
    return [reach, sla, churn, nps]
