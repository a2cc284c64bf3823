"""``journeys report``, ``retier``, ``tier-review``, ``churn-check`` and ``trace``: the closed loop (SPEC §2, §8)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.arguments import LARGEST_ROW_ID, Moment, Whole, as_of_option, output_folder, writing
from engine.cli.arguments import period as checked_period
from engine.cli.output import out as stdout
from engine.language.moments import PERIOD_END_RULE

# A year, as the console's report page takes: a report's cost grows with the rows of its period.
MAX_REPORT_DAYS = 366
ROW_ID = Whole(1, LARGEST_ROW_ID)


def _when(name: str, help: str) -> Any:
    """A date or moment option (Annotated form): bounded as every moment the CLI takes."""
    return typer.Option(name, parser=Moment(), metavar="WHEN", help=help)


def _moment(text: str, option: str, zone_name: str | None = None, *, period_end: bool = False) -> datetime:
    """A date (midnight) or an ISO datetime: UTC unless it says otherwise, or local to ``zone_name`` when given.
    ``period_end``: the end of a period, where a date is its last day, included (``parse_period_end``)."""
    from engine.language.moments import parse_local_moment, parse_period_end, parse_utc_moment

    try:
        if period_end:
            return parse_period_end(text, zone_name)
        return parse_utc_moment(text) if zone_name is None else parse_local_moment(text, zone_name)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (2026-01-31) or datetime", param_hint=option) from None


def _local_at(text: str | None) -> datetime | None:
    """``--at`` of the loop's scheduled jobs, read as ``report`` reads its dates: a day typed is the
    programme's day, the one the console's pages and the jobs' windows are in."""
    if text is None:
        return None
    from engine.language.settings_review import programme_zone

    return _moment(text, "--at", programme_zone())


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_command(
        start: Annotated[str, _when("--from", "first day (or datetime) of the period, in the programme's "
                                              "time zone unless it gives an offset")],
        end: Annotated[str, _when("--to", f"end of the period: {PERIOD_END_RULE}; "
                                         f"at most {MAX_REPORT_DAYS} days after --from")],
        by: Annotated[str | None, typer.Option("--by", help="tier | journey | channel | branch")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
        out: Annotated[Path | None, typer.Option("--out", help="folder for PNG charts")] = None,
        now: Annotated[str | None, as_of_option("--now", help="judge open tasks as of this moment")] = None,
    ) -> None:
        """Closed-loop figures (SPEC §8) for a period, with the programme targets alongside."""
        from rich.console import Console

        from engine.loop.metrics import GROUPINGS
        from engine.loop.progress import Steps
        from engine.loop.reports import build_report, render_table, report_steps

        if by is not None and by not in GROUPINGS:
            raise typer.BadParameter(f"choose one of {', '.join(GROUPINGS)}", param_hint="--by")
        from engine.language.settings_review import programme_zone

        # The programme's days, as the console's report page reads its period: the same dates typed in
        # either give the same figures.
        zone_name = programme_zone()
        period = checked_period(_moment(start, "--from", zone_name), _moment(end, "--to", zone_name, period_end=True),
                                ("--from", start, "--to", end), max_days=MAX_REPORT_DAYS)
        judged_at = _moment(now, "--now", zone_name) if now else None
        if out is not None:
            output_folder(out, "--out")  # before the report, which can take a minute on a large book
        # On stderr, so that --json output stays clean; a live bar on a terminal, and in a pipe a
        # line now and then (except for --json, which a program reads).
        err = Console(stderr=True)
        if as_json and not err.is_terminal:
            report = build_report(*period, by, now=judged_at)
        else:
            with Steps(err, "report", total=report_steps(by), indent="") as steps:
                report = build_report(*period, by, now=judged_at, progress=steps)
        if as_json:
            typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        else:
            render_table(report, stdout)
        if out is not None:
            from engine.loop.charts import render_all

            with writing("--out", out):
                paths = render_all(report, out)
            if not as_json:
                for path in paths:
                    typer.echo(f"chart: {path}")

    @app.command("retier")
    def retier_command(
        at: Annotated[str | None, as_of_option("--at", help="score as of this date/time (default now), in the "
                                                           "programme's time zone unless it gives an offset")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="compute and count, write nothing")] = False,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Re-score every customer; record and announce tier changes (tier.changed events)."""
        from engine.loop.retier import retier

        result = retier(at=_local_at(at), dry_run=dry_run)
        if as_json:
            typer.echo(json.dumps(result.as_dict(), ensure_ascii=False))
            return
        tiers = ", ".join(f"{t} {n}" for t, n in result.as_dict()["tiers"].items())
        typer.echo(
            f"{'would change' if dry_run else 'changed'} {result.changed} of {result.scored} customers "
            f"(up {result.up}, down {result.down}, first tier {result.initial}); events {result.events}\n"
            f"tiers now: {tiers}"
        )

    @app.command("tier-review")
    def tier_review_command(
        at: Annotated[str | None, as_of_option("--at", help="end of the review window (default now), in the "
                                                           "programme's time zone unless it gives an offset")] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Weekly per-tier churn review; dynamic adjustment for tiers over the threshold."""
        from engine.loop.monitoring import run_tier_review

        review = run_tier_review(at=_local_at(at))
        if as_json:
            typer.echo(json.dumps(review.as_dict(), ensure_ascii=False))
            return
        for row in review.tiers:
            rate = "—" if row.churn_rate is None else f"{row.churn_rate:.1%}"
            state = (
                "ADJUSTED: " + ", ".join(row.journeys) if row.adjusted
                else "over threshold, already adjusted this window" if row.already_adjusted
                else "over threshold" if row.over_threshold else "ok"
            )
            typer.echo(f"{row.tier:<10} churn {rate:>6} ({row.churned}/{row.in_force_at_start})  {state}")
        if review.switched_off:
            typer.echo(f"switched off again: {', '.join(review.switched_off)}")

    @app.command("churn-check")
    def churn_check_command(
        at: Annotated[str | None, as_of_option("--at", help="check as of (default now), in the programme's time "
                                                           "zone unless it gives an offset")] = None,
    ) -> None:
        """Daily activity-drop check: raise churn.warning events."""
        from engine.loop.monitoring import churn_warning_check

        result = churn_warning_check(at=_local_at(at))
        typer.echo(f"churn warnings: {result.warned} raised ({result.candidates} customers matched)")

    @app.command("trace")
    def trace_command(
        outcome: Annotated[int | None, typer.Option("--outcome", parser=ROW_ID, metavar="ID")] = None,
        touch: Annotated[int | None, typer.Option("--touch", parser=ROW_ID, metavar="ID")] = None,
        task: Annotated[int | None, typer.Option("--task", parser=ROW_ID, metavar="ID")] = None,
    ) -> None:
        """Which journey, version, step and entry rule an outcome, touch or task came from."""
        from engine.loop.attribution import trace_outcome, trace_task, trace_touch
        from store.db import session_scope

        rows = (("outcome", outcome), ("touch", touch), ("task", task))
        given = [(name, row) for name, row in rows if row is not None]
        # Two given would trace only the first and drop the other without a word.
        if len(given) != 1:
            raise typer.BadParameter("give one of --outcome, --touch or --task")
        [(kind, row_id)] = given
        tracers = {"outcome": trace_outcome, "touch": trace_touch, "task": trace_task}
        with session_scope() as session:
            trace = tracers[kind](session, row_id)
        if trace is None:
            typer.echo(f"no {kind} {row_id}", err=True)
            raise typer.Exit(1)
        typer.echo(json.dumps(trace.as_dict(), ensure_ascii=False, indent=2))
