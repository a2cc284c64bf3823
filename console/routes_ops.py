"""Ops pages: journeys with their validation status, and explain, simulate and report.

The tool pages call the same functions the CLI calls (``explain``, ``simulate``,
``build_report``) with typed form fields; the console never runs CLI code. The
periods are bounded so that one request cannot cost the server more than a
quarter's dry run or a year's report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console import csrf
from console.auth import CurrentUser
from console.deps import user_with
from console.web import render

router = APIRouter(dependencies=[Depends(csrf.protect)])

TOOLS: tuple[str, ...] = ("explain", "simulate", "report")
MAX_SIMULATE_DAYS = 92
MAX_REPORT_DAYS = 366
MAX_FIELD = 64


@dataclass(frozen=True)
class JourneyStatus:
    id: str
    name: str
    category: str
    path: str
    version: str


@router.get("/ops/journeys", response_class=HTMLResponse)
def journeys_page(request: Request) -> HTMLResponse:
    user = user_with(request, "journeys")
    from engine.language.validation import validate

    report = validate()
    journeys = [
        JourneyStatus(j.id, j.journey.name, j.journey.category, j.path, j.version)
        for j in sorted(report.journeys, key=lambda j: j.id)
    ]
    return render(request, "ops_journeys.html", user, journeys=journeys, problems=[str(p) for p in report.problems],
                  rejected=report.rejected_files, ok=report.ok, tools=TOOLS)


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


def _moment(request: Request, name: str, *, local: bool) -> datetime:
    from engine.language.moments import parse_local_moment, parse_utc_moment

    value = _field(request, name)
    if not value:
        raise FormError(f"{name}: required")
    try:
        return parse_local_moment(value) if local else parse_utc_moment(value)
    except ValueError as exc:
        raise FormError(f"{name}: {exc}") from None


def _period(request: Request, *, local: bool, max_days: int, whole_last_day: bool) -> tuple[datetime, datetime]:
    start = _moment(request, "start", local=local)
    end = _moment(request, "end", local=local)
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
        from engine.planning.explain import UnknownCustomer, explain

        customer = _field(request, "customer")
        if not customer:
            raise FormError("customer: required")
        try:
            return explain(customer, _moment(request, "at", local=True))
        except UnknownCustomer as exc:
            raise FormError(str(exc)) from None

    return _tool_page(request, user, "explain", run)


@router.get("/ops/simulate", response_class=HTMLResponse)
def simulate_page(request: Request) -> HTMLResponse:
    user = user_with(request, "journeys")

    def run() -> dict[str, Any]:
        from engine.planning.simulate import simulate

        start, end = _period(request, local=True, max_days=MAX_SIMULATE_DAYS, whole_last_day=True)
        return simulate(start, end).to_json()

    return _tool_page(request, user, "simulate", run)


@router.get("/ops/report", response_class=HTMLResponse)
def report_page(request: Request) -> HTMLResponse:
    user = user_with(request, "reports")
    from engine.loop.metrics import GROUPINGS
    from engine.loop.reports import COLUMNS, build_report, fmt

    def run() -> dict[str, Any]:
        by = request.query_params.get("by") or None
        if by is not None and by not in GROUPINGS:
            raise FormError(f"by: one of {', '.join(GROUPINGS)}")
        start, end = _period(request, local=False, max_days=MAX_REPORT_DAYS, whole_last_day=False)
        return build_report(start, end, by)

    return _tool_page(request, user, "report", run, columns=COLUMNS, groupings=GROUPINGS, fmt=fmt)
