"""``journeys demo``: a simulated month of the whole product on the embedded default, in one command.

This module runs the month; the parts it drives live beside it: ``engine.demo.environment``
(out directory, Prefect settings, masked log), ``engine.demo.providers`` (the stand-ins),
``engine.demo.world`` (the clock, the customers and what they do), ``engine.demo.desk`` (the
agents) and ``engine.demo.summary`` (the result and its table).

What runs is the product itself, on a clock that the demo advances day by day:

1. a fresh SQLite database under the out directory (the old one is deleted), migrations,
   N seeded customers (``engine.demo.seeding.seed_book``), a few agents and a supervisor;
2. local provider stand-ins started in-process: Twilio and WeChat (``standins``, real HTTP,
   signed status callbacks) and an SMTP server; their callbacks go to a ``WebhookSink`` and
   are replayed into the real receipt handlers (``engine.loop.receipts``) with the simulated
   time, because Twilio's callbacks carry no timestamp of their own;
3. every simulated day (local time, Asia/Shanghai): Mondays the retier and the tier review,
   06:00 the churn check, then the planner through the day's window (``engine.planning.planner.plan``
   at 06:05 and before each dispatch, each time for what fell due since the last run);
   every hour 08:00–20:00 customer events through ``emit_event`` (app logins, complaints,
   small claims and their settlement, post-call CSAT answers) and agents working their tasks
   through ``console.tasks`` (assignment, escalation, claim, complete with a mix of outcomes,
   some after the SLA); six times a day the Prefect dispatch flow (``engine.runtime.flows``: batch
   tasks on Prefect's local engine), delivery receipts, and customer replies through the
   stand-ins' inbound injection (opt-outs "TD", digits answering the NPS survey, ordinary
   replies); at day end, policies expiring that day are renewed or lapse and most premiums
   due that day are paid;
4. the report for the period: the per-tier summary (``engine.loop.reports.tier_summary``) as a
   Rich table, a line of totals, PNG charts (``engine.loop.charts``) and ``summary.json``.

The simulated time drives everything: it is passed as ``now``/``at`` wherever a part takes it,
and ``store.clock.simulated_time`` covers the rows parts stamp with ``utcnow()`` themselves
(the planner's ``created_at``, ``emit_event``'s horizon).

Nothing here prints or logs a phone number, e-mail address or ID number: the output is
counts, and the log file (``demo.log``) goes through the masking filter.

Deliberately not simulated: the console's web pages (the task service under them is what
the agents use) and PostgreSQL (the demo is the embedded default).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import threading
import time as wallclock
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from engine.demo.desk import Desk
from engine.demo.environment import (
    DEFAULT_OUT,
    LOG_NAME,
    demo_secret_key,
    fresh_out_dir,
    log_to_file,
    mask_prefect_handlers,
    quiet_prefect,
)
from engine.demo.providers import Providers
from engine.demo.summary import TIERS, DemoResult, print_result
from engine.demo.world import Book, DayStats, Events, SimClock, World, local_moment
from engine.loop.progress import Steps

# The simulated working day, local time: every hour customer events happen and the agents work
# (at half past); at the DISPATCH_AT hours the dispatch flow runs, receipts come back and customers
# reply. Quiet hours (21:00–08:00) hold sends until the morning anyway. Fewer dispatch runs than
# the service's every-5-seconds keep the month to a few minutes: a touch waits for the next one.
HOURS = tuple(time(h, 0) for h in range(8, 21))
DISPATCH_AT = frozenset({time(8, 0), time(10, 0), time(12, 0), time(14, 0), time(17, 0), time(20, 0)})
CHURN_CHECK_AT = time(6, 0)  # as the embedded service schedules them (engine.runtime.service)
PLAN_AT = time(6, 5)  # the day's plan, after the churn check
RETIER_AT = time(3, 0)
REVIEW_AT = time(4, 0)
DAY_END = time(23, 30)


class DemoError(RuntimeError):
    """The demo cannot run (bad arguments, a part of the product missing or broken)."""


@dataclass(frozen=True)
class DemoSettings:
    customers: int = 3000
    days: int = 30
    seed: int = 0
    start: date | None = None  # default: the 1st of the previous month
    out_dir: Path = DEFAULT_OUT

    def start_date(self, today: date | None = None) -> date:
        if self.start is not None:
            return self.start
        today = today or datetime.now(UTC).date()
        first = today.replace(day=1)
        return (first - timedelta(days=1)).replace(day=1)


# --- the product's parts that the demo drives ------------------------------------------------------


def _count(result: Any, *names: str) -> int:
    """A count out of whatever a part returns (a dataclass, a dict, a list)."""
    if result is None:
        return 0
    if isinstance(result, int):
        return result
    for name in names:
        value = result.get(name) if isinstance(result, dict) else getattr(result, name, None)
        if isinstance(value, int):
            return value
        if isinstance(value, list | tuple | set):
            return len(value)
    return 0


class Planner:
    """The product's planner over the demo database."""

    name = "engine.planning.planner.plan"

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def plan(self, at: datetime, start: datetime | None = None) -> int:
        """Plan what is due in (last plan's end, ``at``]; ``start`` only for the very first window."""
        from engine.planning.planner import plan

        return plan(at=at, start=start, url=self.db_url).touches_written


# --- the run ------------------------------------------------------------------------------------------


def _day_figures(db_url: str, start: datetime, end: datetime) -> dict[str, int]:
    """The day's touches and tasks, by the report's definitions (planned_for / created_at in the day)."""
    from sqlalchemy import bindparam, text
    from sqlmodel.sql.sqltypes import UTCDateTime

    from store.db import get_engine

    params = [bindparam("s", start, type_=UTCDateTime()), bindparam("e", end, type_=UTCDateTime())]
    with get_engine(db_url).connect() as conn:
        planned, delivered, failed = conn.execute(
            text("SELECT count(*), coalesce(sum(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END), 0), "
                 "coalesce(sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) FROM touch "
                 "WHERE planned_for >= :s AND planned_for < :e AND status != 'cancelled'").bindparams(*params)
        ).one()
        tasks = conn.execute(
            text("SELECT count(*) FROM agent_task WHERE created_at >= :s AND created_at < :e "
                 "AND status != 'cancelled'").bindparams(*params)
        ).scalar()
    return {"planned": int(planned), "delivered": int(delivered), "failed": int(failed), "tasks": int(tasks or 0)}


@dataclass
class _Parts:
    """What a simulated day works with."""

    db_url: str
    clock: SimClock
    planner: Planner
    dispatch_flow: Any
    providers: Providers
    book: Book = field(init=False)
    world: World = field(init=False)
    desk: Desk = field(init=False)


class Simulation:
    def __init__(self, settings: DemoSettings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.first_day = settings.start_date()
        self.rng = random.Random(settings.seed)  # nosec B311 # a seeded, repeatable demo month

    def run(self) -> DemoResult:
        started = wallclock.perf_counter()
        settings = self.settings
        if settings.customers < 1 or settings.days < 1:
            raise DemoError("--customers and --days must be at least 1")
        out_dir = settings.out_dir
        db_path = fresh_out_dir(out_dir)
        db_url = f"sqlite:///{db_path.resolve()}"
        quiet_prefect(out_dir)
        demo_secret_key(out_dir)
        os.environ["JOURNEYS_DATABASE_URL"] = db_url
        os.environ.pop("JOURNEYS_OUTBOX_DIR", None)  # the stand-ins, not the outbox files
        log_file = out_dir / LOG_NAME
        with log_to_file(log_file):
            return self._run(db_url, db_path, log_file, started)

    def _run(self, db_url: str, db_path: Path, log_file: Path, started: float) -> DemoResult:
        from engine.demo.seeding import seed_book
        from store.migrate import upgrade

        settings, console = self.settings, self.console
        first, days = self.first_day, settings.days
        period_start = local_moment(first, time(0, 0))
        period_end = local_moment(first + timedelta(days=days), time(0, 0))
        console.print(f"[bold]Service Journeys demo[/]: {settings.customers:,} customers, {days} days from "
                      f"{first.isoformat()} (seed {settings.seed}), database {db_path}")
        with Steps(console, "migrating the database"):
            upgrade(db_url)
        # Loaded the day before the period, so every customer has a tier when the period starts.
        console.print(f"  seeding {settings.customers:,} customers")
        with Steps(console, "seeding") as steps:
            seeded = seed_book(db_url, settings.customers, settings.seed, as_of=first - timedelta(days=1),
                               progress=lambda n: steps.note(f"{n:,} of {settings.customers:,} customers"))
        console.print(f"  seeded {seeded.customers:,} customers, {seeded.policies:,} policies, "
                      f"{seeded.claims:,} claims; tiers "
                      + ", ".join(f"{t} {seeded.tiers.get(t, 0):,}" for t in TIERS))

        providers = Providers(db_url, self.settings.out_dir)
        try:
            os.environ.update(providers.env())
            return self._simulate(db_url, db_path, log_file, started, providers, period_start, period_end)
        finally:
            providers.close()

    def _simulate(self, db_url: str, db_path: Path, log_file: Path, started: float, providers: Providers,
                  period_start: datetime, period_end: datetime) -> DemoResult:
        try:
            with self._local_engine():
                return self._month(db_url, db_path, log_file, started, providers, period_start, period_end)
        except KeyboardInterrupt:
            raise DemoError("interrupted") from None

    @contextmanager
    def _local_engine(self) -> Iterator[None]:
        """Prefect's local engine, started up front (time to spare, one retry) and stopped at the end in any case."""
        from engine.runtime.local_engine import LocalEngineError, start_local_engine, startup_timeout, stop_local_engine

        console = self.console
        console.print("  starting Prefect's local engine")
        try:
            with Steps(console, "starting Prefect's local engine", every=15.0) as steps:
                steps.note(f"waiting for its API (up to {startup_timeout():.0f} s, then once more)")
                start_local_engine()
        except LocalEngineError as exc:
            stop_local_engine()
            raise DemoError(str(exc)) from None
        console.print(f"  Prefect's local engine is up ({steps.seconds:.0f} s)")
        try:
            yield
        finally:
            stop_local_engine()

    def _month(self, db_url: str, db_path: Path, log_file: Path, started: float, providers: Providers,
               period_start: datetime, period_end: datetime) -> DemoResult:
        from engine.runtime.flows import dispatch_flow  # after quiet_prefect: Prefect reads its settings on import
        from store.clock import simulated_time

        mask_prefect_handlers()
        clock = SimClock(period_start)
        planner = Planner(db_url)
        parts = _Parts(db_url=db_url, clock=clock, planner=planner, dispatch_flow=dispatch_flow, providers=providers)
        # Parts that stamp rows with "now" themselves (the planner's created_at, emit_event's horizon,
        # task audit times) read the simulated clock; the rest get the time passed explicitly.
        with simulated_time(clock):
            total = self._days(parts, period_start)
            clock.now = period_end
            return self._report(db_url, db_path, log_file, started, providers, planner, total, period_start,
                                period_end)

    def _days(self, parts: _Parts, period_start: datetime) -> DayStats:
        settings, console, rng, db_url = self.settings, self.console, self.rng, parts.db_url
        parts.book = Book(db_url)
        parts.book.unreachable(rng, parts.providers)
        parts.world = World(db_url, parts.book, Events(db_url, parts.clock), parts.providers, rng)
        parts.desk = Desk(db_url, parts.world, rng, agents=max(3, min(12, settings.customers // 500)))
        with Steps(console, "planning the period's first moment"):
            parts.planner.plan(period_start, start=period_start)  # the first window starts with the period
        total = DayStats()
        loop = asyncio.new_event_loop()
        try:
            with Steps(console, "simulating", total=settings.days) as steps:
                for index in range(settings.days):
                    day = self.first_day + timedelta(days=index)
                    steps(f"day {index + 1} ({day.isoformat()})")
                    total.add(self._simulated_day(index, day, loop, parts, steps))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        return total

    def _simulated_day(self, index: int, day: date, loop: asyncio.AbstractEventLoop, parts: _Parts,
                       steps: Steps) -> DayStats:
        """One day lived through, counted by the report's definitions and printed as one line."""
        settings, console, db_url = self.settings, self.console, parts.db_url
        stats = self._day(day, loop, parts, lambda doing: steps.note(f"day {index + 1} ({day.isoformat()}) {doing}"))
        figures = _day_figures(db_url, local_moment(day, time(0, 0)), local_moment(day + timedelta(days=1), time(0, 0)))
        stats.planned, stats.delivered, stats.failed = figures["planned"], figures["delivered"], figures["failed"]
        stats.tasks_created = figures["tasks"]
        console.print(
            f"  day {index + 1:>2}/{settings.days} {day.isoformat()} {day.strftime('%a')}: "
            f"planned {stats.planned:>4}, sent {stats.sent:>4}, delivered {stats.delivered:>4}, "
            f"replies {stats.replies:>3} (opt-outs {stats.opt_outs}), events {stats.events:>3}, "
            f"tasks +{stats.tasks_created} done {stats.tasks_done} (late {stats.tasks_late}), "
            f"churn warnings {stats.churn_warnings}"
            + (f", renewed {stats.renewed} lapsed {stats.lapsed}" if stats.renewed or stats.lapsed else "")
        )
        return stats

    def _day(self, day: date, loop: asyncio.AbstractEventLoop, parts: _Parts, doing: Callable[[str], None]) -> DayStats:
        from engine.loop.monitoring import churn_warning_check, run_tier_review
        from engine.loop.retier import retier

        stats = DayStats()
        db_url, clock, world, desk, providers = parts.db_url, parts.clock, parts.world, parts.desk, parts.providers
        day_start, day_end = local_moment(day, time(0, 0)), local_moment(day + timedelta(days=1), time(0, 0))
        if day.weekday() == 0:  # Monday, as the embedded service schedules them
            doing("retier and tier review")
            clock.now = local_moment(day, RETIER_AT)
            retier(at=clock.now, url=db_url)
            parts.book.refresh()
            clock.now = local_moment(day, REVIEW_AT)
            run_tier_review(at=clock.now, url=db_url)
        doing("churn check")
        clock.now = local_moment(day, CHURN_CHECK_AT)
        stats.churn_warnings = _count(churn_warning_check(at=clock.now, url=db_url), "warned")
        # The day's window is planned as the clock moves through it, (last plan, now] each time, as
        # the service does: planning ahead would let a wait_for time out before its event can come.
        # This first step covers the night and acts on the churn warnings just raised.
        doing("planning")
        clock.now = local_moment(day, PLAN_AT)
        parts.planner.plan(clock.now)
        previous = clock.now
        for hour in HOURS:
            now = local_moment(day, hour)
            doing(f"{hour:%H:%M}")
            clock.now = previous
            stats.events += world.customer_events(previous, now, (now - previous) / (day_end - day_start))
            clock.now = now
            if hour in DISPATCH_AT:
                parts.planner.plan(now)  # what fell due since the last run, then send it
                result = loop.run_until_complete(parts.dispatch_flow(now=now.isoformat(), batch_size=500, lanes=2))
                stats.sent += int(result.get("sent", 0))
                # Receipts arrive a minute after the send, replies a quarter of an hour later.
                clock.now = now + timedelta(minutes=1)
                stats.receipts.update(providers.replay(clock.now))
                clock.now = now + timedelta(minutes=15)
                world.replies(now + timedelta(minutes=1), clock.now, stats)
            clock.now = now + timedelta(minutes=30)
            desk.work(clock.now, stats)
            previous = clock.now
        clock.now = local_moment(day, DAY_END)
        stats.events += world.settle_claims(clock.now)
        world.policies_at_expiry(day, clock.now, stats)
        world.premiums_due(day, clock.now, stats)
        return stats

    def _report(self, db_url: str, db_path: Path, log_file: Path, started: float, providers: Providers,
                planner: Planner, total: DayStats, period_start: datetime, period_end: datetime) -> DemoResult:
        from engine.loop.charts import render_all
        from engine.loop.reports import build_report, report_steps, tier_rows

        out_dir = self.settings.out_dir
        self.console.print("  building the report")
        with Steps(self.console, "building the report", total=report_steps("tier") + 1) as steps:
            report = build_report(period_start, period_end, "tier", now=period_end, url=db_url, progress=steps)
            steps("charts")
            charts = render_all(report, out_dir)
        self.console.print(f"  report built ({steps.seconds:.1f} s)")
        # The summary table's rows come from the same figures: every tier, top-down, even one with
        # no customer in a small book; then any other group ("none").
        found = {row["tier"]: row for row in tier_rows(report["groups"])}
        rows = [found.get(tier, {"tier": tier}) for tier in TIERS] + [r for t, r in found.items() if t not in TIERS]
        result = DemoResult(
            start=period_start, end=period_end, rows=rows, total=report["total"], stats=total, charts=charts,
            database=db_path, log_file=log_file, provider_duplicates=providers.duplicates(), planner=planner.name,
            seconds=wallclock.perf_counter() - started, report=report,
        )
        summary = {
            "period": {"from": period_start.isoformat(), "to": period_end.isoformat()},
            "customers": self.settings.customers, "days": self.settings.days, "seed": self.settings.seed,
            "planner": planner.name, "tiers": rows,
            "total": {k: report["total"].get(k) for k in (
                "planned", "delivered", "reach_rate", "tasks", "sla_judged", "sla_met", "sla_compliance",
                "nps_answers", "nps", "csat", "churn_rate", "renewal_rate", "precision")},
            "simulated": {k: v for k, v in vars(total).items() if isinstance(v, int)},
            "receipts": dict(total.receipts),
            "providers": {"accepted": providers.accepted(), "duplicates": result.provider_duplicates},
            "charts": [p.name for p in charts],
            "seconds": round(result.seconds, 1),
        }
        (out_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str) + "\n",
                                              encoding="utf-8")
        return result


def run_demo(settings: DemoSettings, console: Console | None = None) -> DemoResult:
    # Piped or redirected output gets 120 columns rather than Rich's 80, so the table is not folded,
    # and soft_wrap keeps each progress line on one line.
    console = console or Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)
    with _terminated_as_exit():
        result = Simulation(settings, console).run()
    print_result(result, console)
    return result


@contextmanager
def _terminated_as_exit() -> Iterator[None]:
    """SIGTERM ends the demo the way an error does, through the ``finally`` blocks that stop Prefect's
    local server and the stand-ins; Python's default would end the process at once and leave them running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
