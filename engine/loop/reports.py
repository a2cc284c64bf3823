"""``journeys report``: the §8 figures as a terminal table, JSON, and PNG charts.

``build_report`` returns the plain data structure the console and ``journeys demo``
show (JSON-ready: strings, numbers, None); ``render_table`` prints it with Rich.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from engine.loop.metrics import TARGETS, StepHook, compute_metrics, metric_steps
from store.clock import to_local

# (key, column heading, format) in the order the table shows them.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("planned", "planned", "int"),
    ("reach_rate", "reach", "pct"),
    ("delivery_rate", "deliv.", "pct"),
    # Touches that failed on a channel and went on to the next of their list: the delivery rate counts them
    # among the attempts, so a reader who cannot see them cannot tell why it is below the reach rate.
    ("failed_over", "failed over", "int"),
    ("precision", "precision", "pct"),
    ("first_touch_hours", "1st touch h", "h"),
    ("task_hours", "task h", "h"),
    ("sla_compliance", "SLA", "pct"),
    ("first_contact_resolution", "FCR", "pct"),
    ("complaint_response_hours", "complaint h", "h"),
    ("closure_cycle_hours", "closure h", "h"),
    ("negative_callback_hours", "neg. cb h", "h"),
    ("nps", "NPS", "num"),
    ("csat", "CSAT", "pct"),
    ("complaint_rate", "compl./100", "num"),
    ("churn_rate", "churn", "pct"),
    ("renewal_rate", "renewal", "pct"),
    ("tier_coverage", "coverage", "pct"),
)


def meets(key: str, value: float | None) -> bool | None:
    """Whether ``value`` meets the programme target of metric ``key`` (None: no target, or no figure).

    The one judgement the CLI's tables, the report's target check and the console's page all show."""
    target = TARGETS.get(key)
    if target is None or value is None:
        return None
    goal = target["target"]
    return {"≥": value >= goal, ">": value > goal, "≤": value <= goal, "<": value < goal}[target["sign"]]


def report_steps(by: str | None) -> int:
    """How many steps ``build_report`` tells its ``progress`` about."""
    return metric_steps(by) + (0 if by == "tier" else metric_steps("tier"))


def build_report(
    start: datetime, end: datetime, by: str | None = None, *, now: datetime | None = None, url: str | None = None,
    progress: StepHook | None = None,
) -> dict[str, Any]:
    """The report data: total, groups, per-tier groups (always, for the charts), lift, NPS trend, targets.

    ``progress`` is told the name of each step as it starts (``report_steps(by)`` of them).
    """
    hook: StepHook = progress or (lambda _label: None)
    report = compute_metrics(start, end, by, now=now, url=url, progress=hook).as_dict()
    report["tier_groups"] = (
        report["groups"] if by == "tier"
        else compute_metrics(start, end, "tier", now=now, url=url, progress=hook).groups
    )
    # The line a tier's churn is judged against on every chart, the CLI's and the page's: the tier review's.
    report["churn_threshold"] = churn_threshold(url)
    report["target_check"] = [
        {"metric": key, "label": t["label"], "target": t["target"], "value": report["total"].get(key),
         "met": meets(key, report["total"].get(key))}
        for key, t in TARGETS.items()
    ]
    return report


def churn_threshold(url: str | None = None) -> float:
    """The churn rate over which the tier review switches a tier's retention resources on: the approved setting."""
    from engine.language.settings_review import tier_settings
    from store.db import get_engine

    return tier_settings(get_engine(url), write=False).review.churn_threshold


def tier_summary(start: datetime, end: datetime, *, now: datetime | None = None, url: str | None = None) -> list[
    dict[str, Any]
]:
    """One row per tier (planned, delivered, reach, tasks, SLA, NPS, churn, renewal): what ``journeys demo`` prints."""
    return tier_rows(compute_metrics(start, end, "tier", now=now, url=url).groups)


def tier_rows(groups: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``tier_summary``'s rows out of per-tier groups already computed (a report by tier has them)."""
    return [{"tier": tier, **{k: values.get(k) for k in SUMMARY_KEYS}} for tier, values in groups.items()]


# The figures of a tier_summary row, after its tier.
SUMMARY_KEYS: tuple[str, ...] = (
    "customers", "planned", "delivered", "reach_rate", "tasks", "sla_judged", "sla_met", "sla_compliance",
    "nps_answers", "nps", "csat", "churn_rate", "renewal_rate", "precision",
)


def period_text(start: datetime, end: datetime, zone_name: str) -> str:
    """The half-open period ``[start, end)`` as every title shows it, in the programme's time zone.

    A period of whole local days names its first and last day (November: ``2026-11-01 – 2026-11-30``;
    one day: that day), as a reader counts days; the day ``end`` falls on is not in it, so naming it
    read as one more day. Bounds off midnight are shown as moments, the end being the first one out.
    """
    first, stop = to_local(start, zone_name), to_local(end, zone_name)
    if first.time() == stop.time() == time(0):
        last = (stop.date() - timedelta(days=1)).isoformat()
        return last if first.date().isoformat() == last else f"{first.date().isoformat()} – {last}"
    return f"{first:%Y-%m-%d %H:%M} – {stop:%Y-%m-%d %H:%M}"


def report_period(report: dict[str, Any]) -> str:
    """``period_text`` of a report (``build_report``'s data): what the CLI's tables, the charts, the demo
    and the console's page title it with."""
    period = report["period"]
    return period_text(datetime.fromisoformat(period["from"]), datetime.fromisoformat(period["to"]),
                       period.get("zone") or "UTC")


def fmt(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "h":
        return f"{value:.1f}"
    if kind == "num":
        return f"{value:.1f}"
    return str(value)


def render_table(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(
        title=f"Service journeys {report_period(report)}"
        + (f" by {report['by']}" if report["by"] else ""),
        header_style="bold", show_lines=False,
    )
    table.add_column(report["by"] or "", style="bold", overflow="fold")
    for _key, heading, _kind in COLUMNS:
        table.add_column(heading, justify="right")
    rows = [*report["groups"].items(), ("total", report["total"])]
    for name, values in rows:
        cells = []
        for key, _heading, kind in COLUMNS:
            text = fmt(values.get(key), kind)
            met = meets(key, values.get(key))
            cells.append(text if met is None else f"[{'green' if met else 'red'}]{text}[/]")
        table.add_row(name, *cells, end_section=name == rows[-2][0] if len(rows) > 1 else False)
    console.print(table)

    targets = Table(title="Programme targets (SPEC §8)", header_style="bold")
    for heading in ("target", "now", ""):
        targets.add_column(heading, justify="right" if heading == "now" else "left", overflow="fold")
    for check in report["target_check"]:
        kind = "h" if check["metric"].endswith("hours") else "pct"
        mark = {True: "[green]met[/]", False: "[red]missed[/]", None: "no data"}[check["met"]]
        targets.add_row(check["label"], fmt(check["value"], kind), mark)
    console.print(targets)
    if report["lift"]:
        lift = Table(title="Lift against holdout (goal reached)", header_style="bold")
        for heading in ("journey", "treated", "holdout", "lift"):
            lift.add_column(heading, justify="left" if heading == "journey" else "right", overflow="fold")
        for row in report["lift"]:
            lift.add_row(
                row["journey"],
                f"{fmt(row.get('treated_rate'), 'pct')} of {row.get('treated_enrolled', 0)}",
                f"{fmt(row.get('holdout_rate'), 'pct')} of {row.get('holdout_enrolled', 0)}",
                "—" if row["lift_points"] is None else f"{row['lift_points'] * 100:+.1f} pts",
            )
        console.print(lift)


def render_by_metric(report: dict[str, Any], console: Console | None = None) -> None:
    """The same figures with one row per metric and one column per group: fits a terminal
    of ordinary width when there are few groups (the five tiers), as in ``journeys demo``."""
    console = console or Console()
    groups = [*report["groups"].items(), ("total", report["total"])]
    table = Table(title=f"Every metric, {report_period(report)}", header_style="bold")
    table.add_column("metric", style="bold")
    for name, _values in groups:
        table.add_column(name, justify="right")
    for key, heading, kind in COLUMNS:
        cells = []
        for _name, values in groups:
            text = fmt(values.get(key), kind)
            met = meets(key, values.get(key))
            cells.append(text if met is None else f"[{'green' if met else 'red'}]{text}[/]")
        table.add_row(heading, *cells)
    console.print(table)
