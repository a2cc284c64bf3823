"""Ops pages: journeys with their validation status, and explain, simulate and report.

The tool pages call the same functions the CLI calls (``explain``, ``simulate``,
``build_report``) with typed form fields; the console never runs CLI code. The
periods are bounded so that one request cannot cost the server more than a
quarter's dry run or a year's report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console import csrf
from console.auth import CurrentUser
from console.deps import db_url, user_with
from console.journey_diagram import layout
from console.ops_charts import report_charts
from console.ops_journeys import entry_info, find_journey, journey_rows, step_counts
from console.ops_preview import previews
from console.web import render
from engine.loop.experiments import split_results
from store.clock import utcnow
from store.db import session_scope

router = APIRouter(dependencies=[Depends(csrf.protect)])

TOOLS: tuple[str, ...] = ("explain", "simulate", "report")
MAX_SIMULATE_DAYS = 92
MAX_REPORT_DAYS = 366
MAX_FIELD = 64
DEFAULT_DAYS = 7


@router.get("/ops/journeys", response_class=HTMLResponse)
def journeys_page(request: Request) -> HTMLResponse:
    user = user_with(request, "journeys")
    from engine.language.journey_registry import validated_report

    # The registry's cached validation: nothing is re-read unless a journey, template or config file changed.
    report = validated_report()
    with session_scope(db_url(request)) as session:
        journeys = journey_rows(session, report)
    return render(request, "ops_journeys.html", user, journeys=journeys, problems=[str(p) for p in report.problems],
                  ok=report.ok, tools=TOOLS)


@router.get("/ops/tools/{tool}")
def old_tool_link(request: Request, tool: str) -> RedirectResponse:
    """The tool pages' earlier address (bookmarks): a permanent redirect to the page that replaced it."""
    user_with(request, "reports" if tool == "report" else "journeys")
    return RedirectResponse(f"/ops/{tool if tool in TOOLS else 'journeys'}", status_code=301)


class FormError(ValueError):
    """A field a person typed that the page cannot use; shown beside the form, never a 500."""


def _field(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if len(value) > MAX_FIELD:
        raise FormError(f"{name}: at most {MAX_FIELD} characters")
    return value


def _moment(request: Request, name: str, zone_name: str) -> datetime:
    """A typed moment; without an offset, local to ``zone_name`` (the programme's, looked up once per page)."""
    from engine.language.moments import parse_local_moment

    value = _field(request, name)
    if not value:
        raise FormError(f"{name}: required")
    try:
        return parse_local_moment(value, zone_name)
    except ValueError as exc:
        raise FormError(f"{name}: {exc}") from None


def _period(request: Request, zone_name: str, *, max_days: int, whole_last_day: bool) -> tuple[datetime, datetime]:
    start = _moment(request, "start", zone_name)
    end = _moment(request, "end", zone_name)
    if whole_last_day and "T" not in _field(request, "end"):
        end += timedelta(days=1)
    if end <= start:
        raise FormError("end: must be after start")
    if end - start > timedelta(days=max_days):
        raise FormError(f"end: a period of at most {max_days} days")
    return start, end


def _tool_page(
    request: Request, user: CurrentUser, tool: str, run: Callable[[], dict[str, Any]], **context: Any
) -> HTMLResponse:
    """A tool's page: its form and, once the form is submitted, what ``run`` found or what is wrong with the form."""
    result: dict[str, Any] | None = None
    error: str | None = None
    if request.query_params:
        try:
            result = run()
        except FormError as exc:
            error = str(exc)
    return render(request, f"ops_{tool}.html", user, tool=tool, form=dict(request.query_params),
                  result=result, error=error, **context)


@router.get("/ops/explain", response_class=HTMLResponse)
def explain_page(request: Request) -> HTMLResponse:
    user = user_with(request, "journeys")

    def run() -> dict[str, Any]:
        from engine.language.settings_review import programme_zone
        from engine.planning.explain import UnknownCustomer, explain, reason_code

        customer = _field(request, "customer")
        if not customer:
            raise FormError("customer: required")
        try:
            report = explain(customer, _moment(request, "at", programme_zone()))
        except UnknownCustomer as exc:
            raise FormError(str(exc)) from None
        for touch in report["touches"]:
            # The page words a reason from its rule's code and parameters, in the reader's language.
            touch["reason_code"], touch["reason_params"] = reason_code(touch["rule"], touch["reason"])
        return report

    return _tool_page(request, user, "explain", run)


@router.get("/ops/simulate", response_class=HTMLResponse)
def simulate_page(request: Request) -> HTMLResponse:
    user = user_with(request, "journeys")

    def run() -> dict[str, Any]:
        from engine.language.settings_review import programme_zone
        from engine.planning.simulate import simulate

        start, end = _period(request, programme_zone(), max_days=MAX_SIMULATE_DAYS, whole_last_day=True)
        return simulate(start, end).to_json()

    return _tool_page(request, user, "simulate", run)


@router.get("/ops/report", response_class=HTMLResponse)
def report_page(request: Request) -> HTMLResponse:
    user = user_with(request, "reports")
    from engine.language.settings_review import programme_zone
    from engine.loop.metrics import GROUPINGS, TARGETS
    from engine.loop.reports import COLUMNS, build_report, fmt
    from store.clock import to_local

    zone_name = programme_zone()

    def run() -> dict[str, Any]:
        by = request.query_params.get("by") or None
        if by is not None and by not in GROUPINGS:
            raise FormError(f"by: one of {', '.join(GROUPINGS)}")
        # Days are the programme's days (its time zone), as the people reading the report count them.
        start, end = _period(request, zone_name, max_days=MAX_REPORT_DAYS, whole_last_day=False)
        report = build_report(start, end, by)
        report["local_period"] = [to_local(m, zone_name).strftime("%Y-%m-%d %H:%M") for m in (start, end)]
        report["charts"] = report_charts(report)
        return report

    def met(key: str, value: float | None) -> bool | None:
        target = TARGETS.get(key)
        if target is None or value is None:
            return None
        return bool(value >= target["target"] if target["better"] == "higher" else value <= target["target"])

    return _tool_page(request, user, "report", run, columns=COLUMNS, groupings=GROUPINGS, fmt=fmt, targets=TARGETS,
                      met=met, zone=zone_name)


@router.get("/ops/journeys/{journey_id}", response_class=HTMLResponse)
def journey_page(request: Request, journey_id: str) -> HTMLResponse:
    """One journey: its flow with live counts per step for a period, its experiments, source and messages."""
    user = user_with(request, "journeys")
    from engine.language.moments import parse_local_moment
    from engine.language.settings_review import programme_zone
    from store.clock import to_local

    zone_name = programme_zone()
    error: str | None = None
    form = {k: request.query_params.get(k, "") for k in ("start", "end")}
    if not form["start"] and not form["end"]:
        today = to_local(utcnow(), zone_name).date()
        form = {"start": (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(), "end": today.isoformat()}
    try:
        start, end = _dates(form["start"], form["end"], zone_name)
    except FormError as exc:
        error = str(exc)
        today = to_local(utcnow(), zone_name).date()
        start = parse_local_moment((today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(), zone_name)
        end = parse_local_moment(today.isoformat(), zone_name) + timedelta(days=1)
    with session_scope(db_url(request)) as session:
        found = find_journey(session, journey_id)
        if found is None:
            raise HTTPException(status_code=404)
        loaded, state = found
        counts = step_counts(session, loaded, start, end)
        experiments = split_results(session, loaded.journey, start, end)
    return render(request, "ops_journey.html", user, j=loaded, state=state, counts=counts, form=form, error=error,
                  diagram=layout(loaded.journey), previews=previews(loaded.journey), experiments=experiments,
                  zone=zone_name, entry=entry_info(loaded.journey))


def _dates(start_text: str, end_text: str, zone_name: str) -> tuple[datetime, datetime]:
    """A period of whole days in ``zone_name``, the last one included, from two date inputs."""
    from engine.language.moments import parse_local_moment

    for name, value in (("start", start_text), ("end", end_text)):
        if not value:
            raise FormError(f"{name}: required")
        if len(value) > MAX_FIELD:
            raise FormError(f"{name}: at most {MAX_FIELD} characters")
    try:
        start = parse_local_moment(start_text, zone_name)
        end = parse_local_moment(end_text, zone_name) + timedelta(days=1)
    except ValueError as exc:
        raise FormError(str(exc)) from None
    if end <= start:
        raise FormError("end: must be after start")
    if end - start > timedelta(days=MAX_REPORT_DAYS):
        raise FormError(f"end: a period of at most {MAX_REPORT_DAYS} days")
    return start, end
