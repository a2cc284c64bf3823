"""``journeys simulate``: a dry run of the stored book over a span of days. Sends and writes
nothing.

One planner run in dry-run mode over the whole span, so waits, re-entry and the marketing cap
carry over from day to day exactly as successive daily plans would have them. Figures are
bucketed by the customer's local day: a touch's when it is due to go out, an agent task's when it is
created (the step's moment, when it appears in its queue), as the report counts tasks by their creation;
a task's due time is its SLA, days later on a business clock. The per-customer marketing load (max and p95 of the
busiest rolling window) counts the touches the simulation plans; the cap itself also counts
touches already in the store.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlmodel import Session

from engine.language.durations import parse_duration
from engine.planning.delivery_rules import DROP_CAP, DROP_NO_CHANNEL
from engine.planning.occurrences import local_naive
from engine.planning.planner import ChunkOutput, Planner, active_journeys
from store.clock import as_utc
from store.db import get_engine


@dataclass
class SimReport:
    start: datetime
    end: datetime
    window: str
    touches: Counter[tuple[date, str, str]] = field(default_factory=Counter)  # day, journey, channel
    tasks: Counter[tuple[date, str]] = field(default_factory=Counter)  # day, queue
    quiet_moves: Counter[date] = field(default_factory=Counter)
    cap_drops: Counter[date] = field(default_factory=Counter)
    no_channel_drops: Counter[date] = field(default_factory=Counter)
    load: Counter[int] = field(default_factory=Counter)  # busiest-window count → customers
    zone: str = "Asia/Shanghai"  # the programme's, in which the period's days were given

    def days(self) -> list[date]:
        first = local_naive(self.start, self.zone).date()
        # The end is the first moment after the period (midnight after the last day given), not in it.
        last = local_naive(self.end - timedelta(microseconds=1), self.zone).date()
        found = {d for d, _, _ in self.touches} | {d for d, _ in self.tasks}
        span = {first + timedelta(days=i) for i in range((last - first).days + 1)}
        return sorted(span | found)

    def load_stat(self, quantile: float) -> int:
        total = sum(self.load.values())
        if not total:
            return 0
        seen = 0
        for value in sorted(self.load):
            seen += self.load[value]
            if seen >= quantile * total:
                return value
        return max(self.load)

    def to_json(self) -> dict[str, Any]:
        per_day = []
        # Each day's counts gathered in one pass: scanning every count for every day grew with their product.
        touches: dict[date, dict[str, int]] = defaultdict(dict)
        for (d, j, c), n in sorted(self.touches.items()):
            touches[d][f"{j}/{c}"] = n
        tasks: dict[date, dict[str, int]] = defaultdict(dict)
        for (d, q), n in sorted(self.tasks.items()):
            tasks[d][q] = n
        for day in self.days():
            per_day.append({
                "day": day.isoformat(),
                "touches": touches.get(day, {}),
                "tasks": tasks.get(day, {}),
                "quiet_hour_moves": self.quiet_moves[day], "cap_drops": self.cap_drops[day],
                "no_channel_drops": self.no_channel_drops[day],
            })
        return {
            "from": self.start.isoformat(), "to": self.end.isoformat(), "days": per_day,
            "marketing_per_customer_rolling": {"window": self.window, "max": self.load_stat(1.0),
                                               "p95": self.load_stat(0.95),
                                               "customers": sum(self.load.values())},
            "totals": {"touches": sum(self.touches.values()), "tasks": sum(self.tasks.values()),
                       "quiet_hour_moves": sum(self.quiet_moves.values()), "cap_drops": sum(self.cap_drops.values()),
                       "no_channel_drops": sum(self.no_channel_drops.values())},
        }


def _busiest(times: list[datetime], window: timedelta) -> int:
    times.sort()
    return max(bisect.bisect_left(times, t + window) - i for i, t in enumerate(times))


def simulate(start: datetime, end: datetime, url: str | None = None) -> SimReport:
    from engine.language.journey_registry import load_in_force
    from engine.language.settings_review import delivery_settings

    config = delivery_settings(get_engine(url), write=False)  # what is approved, not what is on disk
    window = parse_duration(config.marketing_cap_window)
    report = SimReport(as_utc(start), as_utc(end), config.marketing_cap_window, zone=config.default_timezone)

    def sink(chunk: ChunkOutput) -> None:
        marketing: dict[int, list[datetime]] = defaultdict(list)
        for d in chunk.decisions:
            tz = chunk.timezones.get(d.wanted.customer_id, config.default_timezone)
            day = local_naive(d.due_at, tz).date()
            if d.planned:
                report.touches[(day, d.wanted.journey_id, d.channel)] += 1
                if d.moved_by:
                    report.quiet_moves[day] += 1
                if d.wanted.category == "marketing":
                    marketing[d.wanted.customer_id].append(d.due_at)
            elif d.dropped_by == DROP_CAP:
                report.cap_drops[day] += 1
            elif d.dropped_by == DROP_NO_CHANNEL:
                report.no_channel_drops[day] += 1
        for t in chunk.tasks:
            report.tasks[(local_naive(t.planned_for, t.timezone).date(), t.queue)] += 1
        for times in marketing.values():
            report.load[_busiest(times, window)] += 1

    with Session(get_engine(url)) as session:
        in_force = load_in_force(session)
        session.rollback()
        Planner(session, active_journeys(session, in_force.journeys.values()), config, report.start, report.end,
                dry_run=True, sink=sink).run()
        session.rollback()
    return report


def render(report: SimReport, console: Console) -> None:
    data = report.to_json()
    table = Table(title=f"Simulation {data['from']} → {data['to']} (dry run, nothing sent or written)")
    for column in ("day", "touches by journey/channel", "tasks by queue", "quiet moves", "cap drops", "no channel"):
        table.add_column(column, overflow="fold")
    for day in data["days"]:
        table.add_row(day["day"], ", ".join(f"{k} {v}" for k, v in day["touches"].items()) or "-",
                      ", ".join(f"{k} {v}" for k, v in day["tasks"].items()) or "-", str(day["quiet_hour_moves"]),
                      str(day["cap_drops"]), str(day["no_channel_drops"]))
    console.print(table)
    load = data["marketing_per_customer_rolling"]
    console.print(f"marketing touches per customer per rolling {load['window']}: max {load['max']}, "
                  f"p95 {load['p95']} (over {load['customers']} customers)", markup=False)


def write_chart(report: SimReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = report.days()
    channels = sorted({c for _, _, c in report.touches})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    base = [0] * len(days)
    for channel in channels:
        values = [sum(n for (d, _, c), n in report.touches.items() if d == day and c == channel) for day in days]
        top.bar(days, values, bottom=base, label=channel)
        base = [a + b for a, b in zip(base, values, strict=True)]
    tasks = [sum(n for (d, _), n in report.tasks.items() if d == day) for day in days]
    top.plot(days, tasks, color="black", marker="o", label="agent tasks")
    top.set_ylabel("per day")
    top.set_title("Planned touches by channel and agent tasks per day")
    top.legend(loc="upper left")
    bottom.bar(days, [report.quiet_moves[d] for d in days], label="moved by quiet hours", color="tab:orange")
    bottom.plot(days, [report.cap_drops[d] for d in days], color="tab:red", marker="x", label="dropped by cap")
    bottom.set_ylabel("per day")
    bottom.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
