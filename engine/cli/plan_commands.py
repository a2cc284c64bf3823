"""``journeys plan``, ``journeys event emit``, ``journeys explain`` and ``journeys simulate``.

Times on the command line are ISO 8601. One without a UTC offset (``2027-02-06T10:00`` or
just ``2027-02-06``) is read in the delivery configuration's default time zone (Asia/Shanghai
unless configured), because that is the clock ops work by.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from engine.cli.arguments import moment_option, output_file, period, whole_option, writing
from engine.cli.output import err, fail, out, refuse_missing_folders
from engine.language.moments import PERIOD_END_RULE

if TYPE_CHECKING:  # the planner loads SQLAlchemy and the rules: only the commands that plan import it
    from engine.planning.planner import ChunkOutput, PlanResult

event_app = typer.Typer(help="Events that trigger journeys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
    app.command("explain")(explain_command)
    app.command("simulate")(simulate_command)
    app.add_typer(event_app, name="event")


def parse_moment(text: str, *, period_end: bool = False) -> datetime:
    """A moment typed, local to the programme's zone unless it says otherwise; ``period_end``: the end of a
    period, where a date is its last day, included (``parse_period_end``)."""
    from engine.language.moments import parse_local_moment, parse_period_end

    try:
        return parse_period_end(text) if period_end else parse_local_moment(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _print_summary(result: PlanResult) -> None:
    from rich.table import Table

    title = f"Plan {result.start.isoformat()} → {result.end.isoformat()}" + (" (dry run)" if result.dry_run else "")
    table = Table(title=title)
    table.add_column("journey", overflow="fold")
    table.add_column("channel", overflow="fold")
    table.add_column("touches", justify="right")
    for (journey, channel), n in sorted(result.by_journey_channel.items()):
        table.add_row(journey, channel, str(n))
    out.print(table)
    if result.tasks_by_queue:
        tasks = Table(title="Agent tasks")
        tasks.add_column("queue", overflow="fold")
        tasks.add_column("tasks", justify="right")
        for queue, n in sorted(result.tasks_by_queue.items()):
            tasks.add_row(queue, str(n))
        out.print(tasks)
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(result.dropped.items())) or "0"
    out.print(f"planned {result.planned} touches, {result.tasks} tasks; held/moved by quiet hours {result.moved}; "
              f"dropped {dropped}; earlier touches pre-empted {result.preempted}, let back in {result.restored}",
              markup=False)
    if not result.dry_run:
        out.print(f"written: {result.touches_written} touches, {result.dropped_written} dropped records, "
                  f"{result.tasks_written} tasks, {result.enrollments_written} enrollments, "
                  f"{result.enrollments_advanced} advanced", markup=False)
    for problem in result.problems:
        err.print(f"warning: {problem}", markup=False)


def _json_sink(chunk: ChunkOutput) -> None:
    """One line per planned touch and task, and per stored touch the cap decided again; customers
    by external id (what ``journeys explain`` and ``journeys event emit`` take)."""
    from engine.planning.planner import decision_json, local_iso

    lines = []
    for d in chunk.decisions:
        if d.planned:
            cid = d.wanted.customer_id
            lines.append(json.dumps(decision_json(d, chunk.timezones.get(cid, "UTC"), chunk.external_ids[cid]),
                                    ensure_ascii=False))
    for c in chunk.changes:
        lines.append(json.dumps({
            "customer": chunk.external_ids[c.customer_id], "journey": c.journey_id, "step": c.step_id,
            "channel": c.channel, "due_at": local_iso(c.due_at, chunk.timezones.get(c.customer_id, "UTC")),
            "key": c.key, "status": c.status, "was": c.old_status, "reason": c.reason,
        }, ensure_ascii=False))
    for t in chunk.tasks:
        lines.append(json.dumps({
            "customer": chunk.external_ids[t.customer_id], "journey": t.journey_id, "step": t.step_id,
            "channel": "task", "template": t.script or t.queue, "due_at": local_iso(t.due_at, t.timezone),
            "key": t.key, "category": "task", "urgent": t.priority == 1,
        }, ensure_ascii=False))
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")


# A quarter: a catch-up after weeks without a run, not the 126 years of `--from 1900-01-01`, which
# planned half a million touches for 300 customers in 48 s and would run for days on a real book.
MAX_PLAN_DAYS = 92
# Processes, each with its own database connection: past a few they wait on each other's writes.
MAX_PLAN_WORKERS = 32


def _check_from_last_plan(until: datetime, at: str) -> None:
    """Without --from the run starts where the last one ended: --at far past it (2199) is as long a
    period as --from far before it, and is refused the same way."""
    from sqlmodel import Session

    from engine.planning.chunk_planner import read_cursor
    from store.db import get_engine

    with Session(get_engine()) as session:
        cursor = read_cursor(session)
    if cursor is not None and until - cursor[0] > timedelta(days=MAX_PLAN_DAYS):
        raise fail(f"--at {at} is {(until - cursor[0]).days:,} days after the last plan ended "
                   f"({cursor[0]:%Y-%m-%d %H:%M} UTC): at most {MAX_PLAN_DAYS} at a time; "
                   "give --from to plan a part")


def plan_command(
    at: str = moment_option(..., "--at", help="Plan up to this moment (ISO 8601)."),
    start: str | None = moment_option(None, "--from", help="Plan from here (default: where the last plan ended); "
                                      f"at most {MAX_PLAN_DAYS} days before --at."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be planned; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per planned touch or task."),
    workers: int | None = whole_option(
        None, "--workers", low=1, high=MAX_PLAN_WORKERS,
        help="Processes planning the book (default: one per core, up to 4, for a book of 60,000+ customers; "
             "env JOURNEYS_PLAN_WORKERS). --json plans in one process"),
) -> None:
    """Plan every touch and agent task due in (FROM, AT]."""
    from engine.planning.planner import plan

    refuse_missing_folders()
    until, since = parse_moment(at), parse_moment(start) if start else None
    if since is not None:
        period(since, until, ("--from", start or "", "--at", at), max_days=MAX_PLAN_DAYS)
    else:
        _check_from_last_plan(until, at)
    result = plan(until, since, dry_run=dry_run, sink=_json_sink if as_json else None, workers=workers)
    if not as_json:
        _print_summary(result)
    if result.failed_customers:
        # Everyone else is planned and written; these wait for their rows to be mended, and the exit
        # status tells a script or a scheduler that something needs a look.
        for reason in sorted(result.failed_customers):
            err.print(f"{reason} (left out of this run; the next run tries again)", markup=False)
        raise typer.Exit(1)


@event_app.command("emit")
def emit_command(
    event_type: str = typer.Argument(..., metavar="TYPE", help="Event type, e.g. survey.answered."),
    customer: str = typer.Option(..., "--customer", help="The customer's external id."),
    data: str = typer.Option("{}", "--data", help="Event data as a JSON object."),
    event_id: str | None = typer.Option(None, "--id", help="Event id; the same id is acted on once."),
) -> None:
    """Store an event and act on it at once (journeys it enters, waits it ends, goals it reaches)."""
    from engine.loop.events import UnknownCustomer, emit_event
    from store.standard_json import strict_loads

    try:
        payload: Any = strict_loads(data)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--data is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise typer.BadParameter("--data must be a JSON object")
    # The same checks as the API's POST /api/events, so that neither stores an event the other refuses.
    from engine.language import event_types
    from engine.language.catalogue import EVENT_TYPES

    if event_type not in EVENT_TYPES:
        raise typer.BadParameter(f"unknown event type {event_type!r}; known: {', '.join(sorted(EVENT_TYPES))}")
    wrong = event_types.check_payload(event_type, payload)
    if wrong:
        raise typer.BadParameter("; ".join(message for _field, message in wrong))
    from store.retention_keys import stand_in_problem

    if event_id is not None and (problem := stand_in_problem(event_id, "--id")):
        raise typer.BadParameter(problem)
    try:
        result = emit_event(event_type, customer, payload, event_id=event_id)
    except UnknownCustomer as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    print(json.dumps({"event_id": result.event_id, "created": result.created, "touches": result.touches,
                      "tasks": result.tasks}))


def explain_command(
    customer: str = typer.Argument(..., metavar="CUSTOMER_EXTERNAL_ID"),
    at: str = moment_option(..., "--at", help="The moment to explain (ISO 8601)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Why a customer does or does not get each journey's touches around AT."""
    from engine.planning.explain import UnknownCustomer, explain, render

    refuse_missing_folders()
    try:
        report = explain(customer, parse_moment(at))
    except UnknownCustomer as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    else:
        render(report, out)


# A year: a change's effect over every season, birthday and renewal (the console's page takes 92 days).
MAX_SIMULATE_DAYS = 366


def simulate_command(
    start: str = moment_option(..., "--from", help="First day (ISO 8601 date)."),
    end: str = moment_option(..., "--to", help=f"End of the period: {PERIOD_END_RULE}; at most {MAX_SIMULATE_DAYS} "
                                              "days in all."),
    as_json: bool = typer.Option(False, "--json"),
    chart: Path | None = typer.Option(None, "--chart", help="Write a PNG chart of the daily volume here."),
) -> None:
    """Dry-run the book day by day: volumes, tasks, cap and quiet-hour effects. Writes nothing.

    Each customer's local day: a touch on the day it goes out, an agent task on the day it is created (as
    the report counts tasks), not the day it is due."""
    from engine.planning.simulate import render, simulate, write_chart

    refuse_missing_folders()
    first, last = period(parse_moment(start), parse_moment(end, period_end=True), ("--from", start, "--to", end),
                         max_days=MAX_SIMULATE_DAYS)
    if chart is not None:
        output_file(chart, "--chart", ".png")  # before the dry run, which can take minutes
    report = simulate(first, last)
    if chart is not None:
        with writing("--chart", chart):
            write_chart(report, chart)
    if as_json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        render(report, out)
        if chart is not None:
            out.print(f"chart written to {chart}", markup=False)
