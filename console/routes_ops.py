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

from console import csrf, text_rules
from console.auth import CurrentUser
from console.deps import db_url, user_with
from console.i18n import Translator
from console.journey_diagram import layout
from console.ops_charts import report_charts
from console.ops_journeys import entry_info, find_journey, journey_rows, step_counts
from console.ops_preview import previews
from console.web import render
from engine.loop.experiments import split_results
from store import touch_reasons
from store.clock import utcnow
from store.db import session_scope

# Every form: its CSRF token first, then no control character in any field or query parameter
# (console.text_rules).
router = APIRouter(dependencies=[Depends(csrf.protect), Depends(text_rules.check_request)])

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


# What can be wrong with an ops form, as msgids; %(field)s is the field's word (FIELD_WORDS).
MESSAGES: dict[str, str] = {
    "required": "%(field)s: required",
    "too_long": "%(field)s: at most %(limit)d characters",
    "not_a_moment": "%(field)s: '%(value)s' is not an ISO 8601 date or time, e.g. %(example)s",
    "out_of_years": "%(field)s: '%(value)s' is outside the years %(first)d–%(last)d",
    "not_after": "%(field)s: must be after %(other)s",
    "too_long_period": "%(field)s: a period of at most %(days)d days",
    "unknown_customer": "%(field)s: no customer with external id '%(value)s'",
    "one_of": "%(field)s: one of %(choices)s",
}
# The pages' parameters and the report's groupings as msgids. The English words are the parameter names and
# values as the page's address spells them, which is how the English page has always named them.
FIELD_WORDS: dict[str, str] = {
    "start": "start",
    "end": "end",
    "at": "at",
    "customer": "customer",
    "by": "by",
    "tier": "tier",
    "journey": "journey",
    "channel": "channel",
    "branch": "branch",
}
MOMENT_EXAMPLE = "2027-02-06T10:00+08:00"


class FormError(ValueError):
    """A field a person typed that the page cannot use; shown beside the form, never a 500.

    It keeps the field, a ``MESSAGES`` key and its parameters, so the page words it in its reader's language;
    ``other`` (a field) and ``choices`` (codes) are words themselves, translated with it. ``value`` is what the
    person typed, shown as typed.
    """

    def __init__(self, field: str, kind: str, **params: Any) -> None:
        self.field, self.kind, self.params = field, kind, params
        super().__init__(self.words(Translator("en")))

    def words(self, t: Translator) -> str:
        params = dict(self.params)
        if "other" in params:
            params["other"] = self._word(t, params["other"])
        if "choices" in params:
            listed = [self._word(t, c) for c in params["choices"]]
            params["choices"] = t.series(listed)
        return t(MESSAGES[self.kind], field=self._word(t, self.field), **params)

    @staticmethod
    def _word(t: Translator, code: str) -> str:
        return t(FIELD_WORDS[code]) if code in FIELD_WORDS else code


def _field(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if len(value) > MAX_FIELD:
        raise FormError(name, "too_long", limit=MAX_FIELD)
    return value


def _read_moment(name: str, value: str, zone_name: str, *, period_end: bool = False) -> datetime:
    """A typed moment; without an offset, local to ``zone_name`` (the programme's, looked up once per page).
    ``period_end``: the end of a period, where a date is its last day, included (``parse_period_end``)."""
    from engine.language.moments import parse_local_moment, parse_period_end
    from store.clock import FIRST_YEAR, LAST_YEAR

    if not value:
        raise FormError(name, "required")
    if len(value) > MAX_FIELD:
        raise FormError(name, "too_long", limit=MAX_FIELD)
    try:
        return parse_period_end(value, zone_name) if period_end else parse_local_moment(value, zone_name)
    except ValueError:
        pass
    # The parser's words are English; which of its two refusals this was is told again here, for the page to word.
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        raise FormError(name, "not_a_moment", value=value, example=MOMENT_EXAMPLE) from None
    raise FormError(name, "out_of_years", value=value, first=FIRST_YEAR, last=LAST_YEAR)


def _moment(request: Request, name: str, zone_name: str) -> datetime:
    return _read_moment(name, _field(request, name), zone_name)


def _bounded(start: datetime, end: datetime, max_days: int) -> tuple[datetime, datetime]:
    if end <= start:
        raise FormError("end", "not_after", other="start")
    if end - start > timedelta(days=max_days):
        raise FormError("end", "too_long_period", days=max_days)
    return start, end


def _period(request: Request, zone_name: str, *, max_days: int) -> tuple[datetime, datetime]:
    """The form's period, its end read as every period's end is (``PERIOD_END_RULE``)."""
    return _dates(_field(request, "start"), _field(request, "end"), zone_name, max_days=max_days)


def _tool_page(
    request: Request, user: CurrentUser, tool: str, run: Callable[[], dict[str, Any]], **context: Any
) -> HTMLResponse:
    """A tool's page: its form and, once the form is submitted, what ``run`` found or what is wrong with the form."""
    result: dict[str, Any] | None = None
    error: FormError | None = None
    if request.query_params:
        try:
            result = run()
        except FormError as exc:
            error = exc
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
            raise FormError("customer", "required")
        try:
            report = explain(customer, _moment(request, "at", programme_zone()))
        except UnknownCustomer:
            raise FormError("customer", "unknown_customer", value=customer) from None
        for touch in report["touches"]:
            # The page words a reason from its code and parameters, in the reader's language: a dry run's
            # from its rule, a stored touch's as every page reads a stored reason (store.touch_reasons).
            # Read by its rule alone, a stored touch cancelled because its journey was edited or removed, or
            # dropped as too late, showed the engine's English on the Chinese page.
            stored = touch_reasons.parse(touch["reason"]) if touch["source"] == "store" else None
            touch["reason_code"], touch["reason_params"] = (
                (stored.code, stored.params) if stored is not None else reason_code(touch["rule"], touch["reason"]))
        return report

    return _tool_page(request, user, "explain", run)


@router.get("/ops/simulate", response_class=HTMLResponse)
def simulate_page(request: Request) -> HTMLResponse:
    user = user_with(request, "journeys")

    def run() -> dict[str, Any]:
        from engine.language.settings_review import programme_zone
        from engine.planning.simulate import simulate

        start, end = _period(request, programme_zone(), max_days=MAX_SIMULATE_DAYS)
        return simulate(start, end).to_json()

    return _tool_page(request, user, "simulate", run)


@router.get("/ops/report", response_class=HTMLResponse)
def report_page(request: Request) -> HTMLResponse:
    user = user_with(request, "reports")
    from engine.language.settings_review import programme_zone
    from engine.loop.metrics import GROUPINGS, TARGETS
    from engine.loop.reports import COLUMNS, build_report, fmt, meets, report_period

    zone_name = programme_zone()

    def run() -> dict[str, Any]:
        by = request.query_params.get("by") or None
        if by is not None and by not in GROUPINGS:
            raise FormError("by", "one_of", choices=list(GROUPINGS))
        # Days are the programme's days (its time zone), as the people reading the report count them.
        start, end = _period(request, zone_name, max_days=MAX_REPORT_DAYS)
        report = build_report(start, end, by)
        # Titled as the CLI's tables and charts title the same period: November is 2026-11-01 – 2026-11-30.
        report["period_text"] = report_period(report)
        report["charts"] = report_charts(report)
        return report

    return _tool_page(request, user, "report", run, columns=COLUMNS, groupings=GROUPINGS, fmt=fmt, targets=TARGETS,
                      met=meets, zone=zone_name)


@router.get("/ops/journeys/{journey_id}", response_class=HTMLResponse)
def journey_page(request: Request, journey_id: str) -> HTMLResponse:
    """One journey: its flow with live counts per step for a period, its experiments, source and messages."""
    user = user_with(request, "journeys")
    from engine.language.moments import parse_local_moment
    from engine.language.settings_review import programme_zone
    from store.clock import to_local

    zone_name = programme_zone()
    error: FormError | None = None
    form = {k: request.query_params.get(k, "") for k in ("start", "end")}
    if not form["start"] and not form["end"]:
        today = to_local(utcnow(), zone_name).date()
        form = {"start": (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(), "end": today.isoformat()}
    try:
        start, end = _dates(form["start"], form["end"], zone_name)
    except FormError as exc:
        error = exc
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


def _dates(
    start_text: str, end_text: str, zone_name: str, *, max_days: int = MAX_REPORT_DAYS
) -> tuple[datetime, datetime]:
    """A period from two inputs in ``zone_name``: a date ending it is its last day, included, as the CLI reads
    its ``--to`` (``PERIOD_END_RULE``)."""
    start = _read_moment("start", start_text, zone_name)
    end = _read_moment("end", end_text, zone_name, period_end=True)
    return _bounded(start, end, max_days)
