"""PNG charts of a metrics report (matplotlib, Agg backend: no display needed).

Four charts a supervisor reads at a glance, each with the programme target drawn in:
reach rate by tier, task SLA compliance by group, NPS trend, churn by tier against the
15% dynamic-adjustment line and the 5% programme target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are rendered on servers and in CI

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from store.models import TIERS

GOOD, BAD, NEUTRAL = "#2e7d32", "#c62828", "#1565c0"


def _ordered(groups: dict[str, dict[str, Any]]) -> list[str]:
    rank = {t: i for i, t in enumerate(TIERS)}
    return sorted(groups, key=lambda g: (rank.get(g, len(TIERS)), g))


def _bars(ax: Axes, labels: list[str], values: list[float | None], colours: list[str], fmt: str) -> None:
    heights = [v or 0.0 for v in values]
    bars = ax.bar(labels, heights, color=colours)
    for bar, value in zip(bars, values, strict=True):
        text = "n/a" if value is None else fmt.format(value)
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize=9, xytext=(0, 2), textcoords="offset points")


def _percent_axis(ax: Axes, top: float = 1.0) -> None:
    ax.set_ylim(0, top)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))


def _title(ax: Axes, title: str, report: dict[str, Any]) -> None:
    from engine.loop.reports import report_period

    ax.set_title(f"{title}\n{report_period(report)}", fontsize=11)


def reach_by_tier(report: dict[str, Any], path: Path) -> Path:
    groups = report["tier_groups"]
    labels = _ordered(groups)
    values = [groups[g]["reach_rate"] for g in labels]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    _bars(ax, labels, values, [NEUTRAL] * len(labels), "{:.0%}")
    ax.axhline(0.65, color="grey", linestyle="--", linewidth=1)
    ax.text(len(labels) - 0.5, 0.66, "expected reach, basic customers 65%", ha="right", fontsize=8, color="grey")
    _percent_axis(ax, 1.1)
    ax.set_ylabel("delivered / planned")
    _title(ax, "Reach rate by tier", report)
    return _save(fig, path)


def sla_compliance(report: dict[str, Any], path: Path) -> Path:
    groups = report["groups"] or {"all": report["total"]}
    labels = [g for g in _ordered(groups) if groups[g].get("sla_compliance") is not None] or ["all"]
    values = [groups.get(g, report["total"]).get("sla_compliance") for g in labels]
    colours = [GOOD if (v or 0) >= 0.9 else BAD for v in values]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    _bars(ax, labels, values, colours, "{:.0%}")
    ax.axhline(0.9, color="grey", linestyle="--", linewidth=1)
    ax.text(len(labels) - 0.5, 0.91, "90%", ha="right", fontsize=8, color="grey")
    _percent_axis(ax, 1.1)
    ax.set_ylabel("tasks done by their due time")
    _title(ax, f"Task SLA compliance by {report['by'] or 'total'}", report)
    if len(labels) > 4:
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    return _save(fig, path)


def nps_trend(report: dict[str, Any], path: Path) -> Path:
    trend = report["nps_trend"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    if trend:
        xs = [b["from"][:10] for b in trend]
        ys = [b["nps"] for b in trend]
        ax.plot(xs, ys, marker="o", color=NEUTRAL)
        for x, y, b in zip(xs, ys, trend, strict=True):
            ax.annotate(f"{y:+.0f} (n={b['answers']})", (x, y), fontsize=8, xytext=(0, 6),
                        textcoords="offset points", ha="center")
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    else:
        ax.text(0.5, 0.5, "no NPS answers in the period", ha="center", va="center", transform=ax.transAxes)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_ylim(-100, 110)
    ax.set_ylabel("NPS (promoters − detractors, %)")
    _title(ax, "NPS trend", report)
    return _save(fig, path)


def churn_by_tier(report: dict[str, Any], path: Path, threshold: float = 0.15, target: float = 0.05) -> Path:
    groups = report["tier_groups"]
    labels = [g for g in _ordered(groups) if groups[g].get("churn_rate") is not None]
    values = [groups[g]["churn_rate"] for g in labels]
    colours = [BAD if (v or 0) > threshold else ("#f9a825" if (v or 0) >= target else GOOD) for v in values]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    _bars(ax, labels, values, colours, "{:.1%}")
    top = max([threshold * 1.6, *[(v or 0) * 1.25 for v in values]])
    ax.axhline(threshold, color=BAD, linestyle="--", linewidth=1.2)
    ax.text(-0.4, threshold, f" {threshold:.0%}: dynamic adjustment", va="bottom", fontsize=8, color=BAD)
    ax.axhline(target, color=GOOD, linestyle=":", linewidth=1.2)
    ax.text(-0.4, target, f" {target:.0%}: programme target", va="bottom", fontsize=8, color=GOOD)
    _percent_axis(ax, top)
    ax.set_ylabel("customers lost / in force at start")
    _title(ax, "Churn by tier", report)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def render_all(report: dict[str, Any], out_dir: Path, threshold: float | None = None) -> list[Path]:
    """Write the four charts into ``out_dir``; ``report`` is ``reports.build_report(...)``, whose churn
    threshold (the tier review's) the churn chart draws unless ``threshold`` is given."""
    if threshold is None:
        threshold = float(report.get("churn_threshold") or 0.15)
    return [
        reach_by_tier(report, out_dir / "reach_by_tier.png"),
        sla_compliance(report, out_dir / "sla_compliance.png"),
        nps_trend(report, out_dir / "nps_trend.png"),
        churn_by_tier(report, out_dir / "churn_by_tier.png", threshold=threshold),
    ]
