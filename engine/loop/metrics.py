"""Closed-loop metrics of SPEC §8 for any period ``[start, end)``, overall and by tier, journey, channel or branch.

Every figure is a SQL aggregate (one GROUP BY per family of metrics); nothing
walks rows in Python. The families live in ``engine.loop.service_metrics`` (touches, first
touch, tasks, complaints, lift) and ``engine.loop.customer_metrics`` (surveys, churn,
renewals, coverage); this module merges them into a report. Definitions, so that a figure means the same thing to
everybody who reads it:

Grouping
  tier     the customer's tier at the start of the period: the newest tier change at
           or before ``start``; else the ``from_tier`` of the first change after it;
           else the current tier ("none" when untiered).
  branch   the customer's branch office (分支机构), ``customer.branch``.
  journey  the journey of the touch / task / enrollment; survey answers follow the
           touch that asked the question ("unattributed" without one).
  channel  the channel the touch ended on (its last attempt); a failure on an earlier channel of its
           list counts under that channel as ``failed_over``; agent tasks count under ``agent``.
  Customer-level figures (churn, renewal, coverage, complaints) have no journey or
  channel and are left empty in those groupings. By tier, every tier is a group.
  In a group a family applies to but has no rows in (a tier with no touches, the agent
  channel's touches), its counts are 0 and its rates None (a zero denominator), as in the total.

Touches (planned_for in the period; cancelled touches were withdrawn on purpose, e.g. a
goal reached or an opt-out, and do not count as planned)
  reach rate        delivered / planned
  failed over       touches that failed on a channel and went on to the next of their list, once
                    per touch and channel left (a permanent error, or no consent on it)
  delivery rate     per attempt: delivered / (touches handed to a provider on the channel they ended
                    on (sent + delivered + failed) + failed over), so a channel's failures count
                    against it even when another channel then delivered the touch
  service precision acted on / reached: touches with a ``replied`` or ``clicked`` outcome plus
                    done tasks whose outcome shows the customer engaged (ACTED_TASK_CODES),
                    over touches that reached the customer (delivered or acted on) plus done tasks.

Response times (hours, averages)
  trigger → first touch  from the trigger (the entry event's ``occurred_at`` when the
                    enrollment's occurrence is an event id, else ``entered_at``) to the first
                    ``sent_at`` of its touches; enrollments entered in the period, holdout excluded.
  task created → done    tasks created in the period and done.

Tasks (created in the period, not cancelled)
  SLA compliance    met / judged: judged = done, or still open past ``due_at`` at ``now``;
                    met = done by ``due_at``. Open tasks not yet due are not judged.
  first-contact resolution  root tasks (no parent) that are done: share whose outcome is in
                    RESOLVING_CODES and that needed no follow-up task.

Complaints (``complaint.filed`` events in the period; a task answers a complaint when its
``occurrence`` is the event's external id, which is how event-entry journeys key them)
  response time     event → first done task; "within 24 h" share judged like SLAs.
  closure cycle     event → first task done with outcome ``resolved``.
  complaint rate    complaints per 100 customers in force at the period start.
  negative-feedback callback: the same for ``survey.answered`` events that got a task,
                    against 6 h.

Surveys (answered in the period)
  NPS   (promoters 9–10 − detractors 0–6) / answers × 100
  CSAT  share of answers ≥ 4 on the 1–5 scale

Customers (policy dates are days of the programme's calendar: the start date is the day of ``start``
in its time zone, as the console's periods of local days count it, not the UTC day before)
  in force at start  customers with a policy whose term covers the start date
                    (``start_date ≤ start ≤ expiry_date``), whatever its status now.
  churn rate        of those, the share who now have no policy that is ``active`` or
                    ``renewed`` (every policy lapsed or cancelled); retention = 1 − churn.
                    Policy statuses carry no date, so the figure uses statuses as stored now.
  renewal rate      policies whose ``expiry_date`` falls in the period: renewed /
                    (renewed + lapsed + cancelled); still ``active`` ones are pending.
  tier coverage     live customers created before ``end`` that had a tier at ``end`` (``tier_at``, as the
                    grouping reads the start) / all of them. Touches do not record the tier they were
                    planned under, so no figure can group a touch by that.

Lift (journeys with a holdout branch): enrollments entered in the period that a split put in a branch
(as the journey page's experiment counts them), goal rate (exit_reason in GOAL_EXIT_REASONS) of the
treated branches minus that of the holdout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.loop.customer_metrics import (
    customer_figures,
    in_force_at,
    nps_trend,
    renewal_figures,
    still_held,
    survey_figures,
)
from engine.loop.metric_sql import GROUPINGS, Grouped, Period, Rows, ratio, tier_at, tiers_once, without_jit
from engine.loop.service_metrics import (
    complaint_figures,
    failover_figures,
    first_touch_figures,
    lift_by_journey,
    task_figures,
    touch_figures,
)
from store.clock import as_utc, utcnow
from store.db import get_engine
from store.models import TIERS

# The names callers import from here, wherever they are defined.
__all__ = [
    "GROUPINGS",
    "METRIC_KEYS",
    "TARGETS",
    "MetricsReport",
    "churn_by_tier",
    "compute_metrics",
    "in_force_at",
    "still_held",
    "tier_at",
]

# Programme targets (SPEC §8) shown next to the figures. ``sign``: how a figure must compare with its
# target to meet it, as SPEC words it (churn below 5%: exactly 5% misses it).
TARGETS: dict[str, dict[str, Any]] = {
    "precision": {"target": 0.40, "baseline": 0.22, "better": "higher", "sign": "≥",
                  "label": "service precision ≥ 40%"},
    "churn_rate": {"target": 0.05, "better": "lower", "sign": "<", "label": "churn < 5%"},
    "csat": {"target": 0.85, "better": "higher", "sign": "≥", "label": "CSAT ≥ 85%"},
    "complaint_response_hours": {"target": 24.0, "better": "lower", "sign": "≤", "label": "complaint response ≤ 24 h"},
    "negative_callback_hours": {"target": 6.0, "better": "lower", "sign": "≤",
                                "label": "negative-feedback callback ≤ 6 h"},
}

# The figures of one group, in the order a report shows them.
METRIC_KEYS: tuple[str, ...] = (
    "planned", "delivered", "failed", "failed_over", "reach_rate", "delivery_rate",
    "first_touch_hours", "tasks", "task_hours", "sla_judged", "sla_met", "sla_compliance",
    "fcr_cases", "first_contact_resolution",
    "complaints", "complaint_rate", "complaint_response_hours", "complaint_within_24h", "closure_cycle_hours",
    "negative_callbacks", "negative_callback_hours", "negative_callback_within_6h",
    "nps_answers", "nps", "csat_answers", "csat",
    "in_force_at_start", "churned", "churn_rate", "retention_rate",
    "renewals_due", "renewed", "renewal_rate", "customers", "tier_coverage",
    "acted_on", "reached", "precision",
)


@dataclass
class MetricsReport:
    start: datetime
    end: datetime
    now: datetime
    by: str | None
    total: dict[str, Any]
    groups: dict[str, dict[str, Any]]
    lift: list[dict[str, Any]] = field(default_factory=list)
    nps_trend: list[dict[str, Any]] = field(default_factory=list)
    targets: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(TARGETS))
    zone: str = "UTC"  # the programme's time zone, whose days the period is read and shown in

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": {"from": self.start.isoformat(), "to": self.end.isoformat(), "zone": self.zone},
            "computed_at": self.now.isoformat(), "by": self.by, "total": self.total, "groups": self.groups,
            "lift": self.lift, "nps_trend": self.nps_trend, "targets": self.targets,
        }


def _finish(values: dict[str, Any]) -> dict[str, Any]:
    """Derived figures across families, and every key present (None where it does not apply)."""
    handed = values.pop("_handed", None)
    if handed is not None:
        values["delivery_rate"] = ratio(values["delivered"], handed + (values.get("failed_over") or 0))
    acted = values.pop("_touch_acted", 0) + values.pop("_task_acted", 0)
    reached = values.pop("_touch_reached", 0) + values.pop("_task_done", 0)
    if "planned" in values or "tasks" in values:
        values["acted_on"], values["reached"] = acted, reached
        values["precision"] = ratio(acted, reached)
    if "in_force_at_start" in values:
        # Customer-level grouping: no complaint event means none were filed, not "unknown".
        values.setdefault("complaints", 0)
        values["complaint_rate"] = ratio(values["complaints"] * 100, values["in_force_at_start"], 2)
    return {key: values.get(key) for key in METRIC_KEYS}


# Each family with what a progress display calls it.
# A family answers None when the grouping does not apply to it (a customer has no journey).
FAMILIES: tuple[tuple[str, Callable[[sa.Connection, Period, str | None], Grouped | None]], ...] = (
    ("touches", touch_figures), ("failovers", failover_figures), ("first touch", first_touch_figures),
    ("tasks", task_figures),
    ("complaints", complaint_figures), ("surveys", survey_figures), ("customers", customer_figures),
    ("renewals", renewal_figures),
)

# Told the name of each step of ``compute_metrics`` as it starts (see ``metric_steps``).
StepHook = Callable[[str], None]


def _no_progress(_label: str) -> None:
    return None


def metric_steps(by: str | None) -> int:
    """How many steps ``compute_metrics`` announces: the tiers at the start (by tier), each family (total and
    groups in one), lift, NPS trend."""
    return len(FAMILIES) + 2 + (1 if by == "tier" else 0)


def _collect(
    conn: sa.Connection, ctx: Period, by: str | None, progress: StepHook = _no_progress
) -> tuple[dict[str, Any], Rows]:
    """The total and, when ``by`` is given, the groups: one pass per family, the total added up from its groups."""
    total: dict[str, Any] = {}
    merged: Rows = {}
    # Of each family that applies to the grouping, the figures of a group it has no rows in.
    empties: list[dict[str, Any]] = []
    for name, family in FAMILIES:
        progress(f"{name} by {by}" if by else name)
        found = family(conn, ctx, by)
        if found is None:  # no groups of this kind: the total alone, in a pass of its own
            found = family(conn, ctx, None) or Grouped({})
        else:
            empties.append(found.empty)
            for grp_value, values in found.groups.items():
                merged.setdefault(str(grp_value), {}).update(values)
        total.update(found.total)
    if by is None:
        return _finish(total), {}
    if by == "tier":
        # Every tier is a row, as the demo's table lists them: a tier nobody was in this period reads 0
        # customers and 0 touches rather than being missing from the report.
        for tier in TIERS:
            merged.setdefault(tier, {})
    for values in merged.values():
        for empty in empties:
            for key, value in empty.items():
                values.setdefault(key, value)
    rank = {t: i for i, t in enumerate(TIERS)}  # tiers top-down, then everything else by name
    return _finish(total), {
        g: _finish(merged[g]) for g in sorted(merged, key=lambda g: (rank.get(g, len(TIERS)), g))
    }


def _programme_zone(engine: sa.Engine) -> str:
    # Policy dates are days of the programme's calendar, the days a period's local midnights bound.
    from engine.language.settings_review import programme_zone

    return programme_zone(engine)


def compute_metrics(
    start: datetime,
    end: datetime,
    by: str | None = None,
    *,
    now: datetime | None = None,
    url: str | None = None,
    progress: StepHook = _no_progress,
    zone: str | None = None,
) -> MetricsReport:
    """Every §8 figure for ``[start, end)``: the total, and per group when ``by`` is given.

    ``now`` is the moment open tasks are judged against their due time (default: the
    real now); tests and back-dated reports pass it explicitly. ``progress`` is told each
    step's name as it starts (``metric_steps(by)`` of them). ``zone``: the calendar policy dates
    are read in (default: the programme's time zone in force).
    """
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}: choose one of {', '.join(GROUPINGS)}")
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise ValueError("the period must end after it starts")
    engine = get_engine(url)
    zone = zone or _programme_zone(engine)
    with engine.connect() as conn:
        ctx = Period(start=start, end=end, now=as_utc(now) if now else utcnow(), dialect=conn.dialect.name,
                     zone=zone)
        without_jit(conn)
        if by == "tier":
            progress("tiers at the start")
            with tiers_once(conn, ctx) as tiered:
                total, groups = _collect(conn, tiered, by, progress)
            without_jit(conn)  # tiers_once committed: a new transaction
        else:
            total, groups = _collect(conn, ctx, by, progress)
        progress("lift against holdout")
        lift = lift_by_journey(conn, ctx)
        progress("NPS trend")
        return MetricsReport(start=start, end=end, now=ctx.now, by=by, total=total, groups=groups, lift=lift,
                             nps_trend=nps_trend(conn, ctx), zone=zone)


def churn_by_tier(start: datetime, end: datetime, url: str | None = None) -> dict[str, dict[str, Any]]:
    """In force at ``start``, churned and churn rate per tier (tier at ``start``): used by the tier review."""
    engine = get_engine(url)
    zone = _programme_zone(engine)
    with engine.connect() as conn:
        ctx = Period(start=as_utc(start), end=as_utc(end), now=as_utc(end), dialect=conn.dialect.name, zone=zone)
        without_jit(conn)
        found = customer_figures(conn, ctx, "tier")
        return {
            str(g): {k: v[k] for k in ("in_force_at_start", "churned", "churn_rate")}
            for g, v in (found.groups if found else {}).items()
        }
