"""What a demo run comes to (``DemoResult``) and how the terminal shows it: the per-tier table and totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from engine.demo.world import LOCAL_TZ, DayStats

# Top-down, the order the demo lists tiers in (seeding line, table, summary.json), even empty ones.
TIERS = ("diamond", "platinum", "gold", "silver", "potential")


@dataclass
class DemoResult:
    start: datetime
    end: datetime
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    stats: DayStats
    charts: list[Path]
    database: Path
    log_file: Path
    provider_duplicates: dict[str, dict[str, int]]
    planner: str
    seconds: float
    # The full §8 report for the period (every metric by tier), printed after the summary.
    report: dict[str, Any] | None = None


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def summary_table(result: DemoResult) -> Table:
    """The per-tier summary, every tier listed (top-down) even when it had nothing this month."""
    from engine.loop.reports import period_text, report_period

    # Titled as the report printed after it titles the same period.
    period = report_period(result.report) if result.report else period_text(result.start, result.end, LOCAL_TZ)
    table = Table(title=f"Per tier, {period}", header_style="bold")
    for heading in ("tier", "customers", "planned", "delivered", "reach", "tasks", "SLA met", "NPS"):
        table.add_column(heading, justify="left" if heading == "tier" else "right")
    by_tier = {row["tier"]: row for row in result.rows}
    for tier in [*TIERS, *sorted(t for t in by_tier if t not in TIERS)]:
        row = by_tier.get(tier, {})
        judged, met = row.get("sla_judged") or 0, row.get("sla_met") or 0
        sla = f"{met}/{judged} {_pct(row.get('sla_compliance'))}" if judged else "—"
        answers = row.get("nps_answers") or 0
        nps = f"{_num(row.get('nps'))} (n={answers})" if answers else "—"
        table.add_row(tier, f"{row.get('customers') or 0:,}", f"{row.get('planned') or 0:,}",
                      f"{row.get('delivered') or 0:,}", _pct(row.get("reach_rate")), f"{row.get('tasks') or 0:,}",
                      sla, nps)
    return table


def totals_line(result: DemoResult) -> str:
    t, s = result.total, result.stats
    judged, met = t.get("sla_judged") or 0, t.get("sla_met") or 0
    duplicates = sum(len(d) for d in result.provider_duplicates.values())
    return (
        f"Total: planned {t.get('planned') or 0:,}, delivered {t.get('delivered') or 0:,} "
        f"(reach {_pct(t.get('reach_rate'))}), tasks {t.get('tasks') or 0:,}, SLA met {met}/{judged} "
        f"({_pct(t.get('sla_compliance'))}), NPS {_num(t.get('nps'))} from {t.get('nps_answers') or 0} answers; "
        f"sent {s.sent:,}, replies {s.replies:,}, opt-outs {s.opt_outs}, events {s.events:,}, "
        f"tasks done {s.tasks_done:,} ({s.tasks_late} late), churn warnings {s.churn_warnings}, "
        f"sent twice {duplicates}; {result.seconds:.0f} s"
    )


def print_result(result: DemoResult, console: Console) -> None:
    from engine.loop.reports import render_by_metric

    console.print(summary_table(result))
    console.print(totals_line(result))
    if result.report is not None:
        render_by_metric(result.report, console)
    console.print(f"Charts: {', '.join(str(p) for p in result.charts)}")
    console.print(f"Database: {result.database}  Log: {result.log_file}  Summary: "
                  f"{result.log_file.parent / 'summary.json'}")
