"""Closed-loop metrics of SPEC §8 for any period ``[start, end)``, overall and by tier, journey, channel or branch.

Every figure is a SQL aggregate (one GROUP BY per family of metrics); nothing
walks rows in Python. Definitions, so that a figure means the same thing to
everybody who reads it:

Grouping
  tier     the customer's tier at the start of the period: the newest tier change at
           or before ``start``; else the ``from_tier`` of the first change after it;
           else the current tier ("none" when untiered).
  branch   the customer's branch office (分支机构), ``customer.branch``.
  journey  the journey of the touch / task / enrollment; survey answers follow the
           touch that asked the question ("unattributed" without one).
  channel  the touch's channel; agent tasks count under ``agent``.
  Customer-level figures (churn, renewal, coverage, complaints) have no journey or
  channel and are left empty in those groupings.

Touches (planned_for in the period; cancelled touches were withdrawn on purpose, e.g. a
goal reached or an opt-out, and do not count as planned)
  reach rate        delivered / planned
  delivery rate     delivered / handed to a provider (sent + delivered + failed)
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

Customers
  in force at start  customers with a policy whose term covers the start date
                    (``start_date ≤ start ≤ expiry_date``), whatever its status now.
  churn rate        of those, the share who now have no policy that is ``active`` or
                    ``renewed`` (every policy lapsed or cancelled); retention = 1 − churn.
                    Policy statuses carry no date, so the figure uses statuses as stored now.
  renewal rate      policies whose ``expiry_date`` falls in the period: renewed /
                    (renewed + lapsed + cancelled); still ``active`` ones are pending.
  tier coverage     live customers created before ``end`` that have a tier / all of them.

Lift (journeys with a holdout branch): enrollments entered in the period, goal rate
(exit_reason in GOAL_EXIT_REASONS) of the treated branches minus that of the holdout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.sql.sqltypes import UTCDateTime

from engine.loop.sqlfn import bucket_index, seconds_between, table
from store.clock import as_utc, utcnow
from store.db import get_engine
from store.models import TIERS

GROUPINGS = ("tier", "journey", "channel", "branch")
ACTED_TOUCH_KINDS = ("replied", "clicked")
ACTED_TASK_CODES = ("reached", "resolved", "renewal_yes", "renewal_no", "call_back")
RESOLVING_CODES = ("reached", "resolved", "renewal_yes", "renewal_no")
GOAL_EXIT_REASONS = ("goal",)
HOLDOUT = "holdout"
COMPLAINT_EVENT = "complaint.filed"
SURVEY_EVENT = "survey.answered"

# Programme targets (SPEC §8) shown next to the figures.
TARGETS: dict[str, dict[str, Any]] = {
    "precision": {"target": 0.40, "baseline": 0.22, "better": "higher", "label": "service precision ≥ 40%"},
    "churn_rate": {"target": 0.05, "better": "lower", "label": "churn < 5%"},
    "csat": {"target": 0.85, "better": "higher", "label": "CSAT ≥ 85%"},
    "complaint_response_hours": {"target": 24.0, "better": "lower", "label": "complaint response ≤ 24 h"},
    "negative_callback_hours": {"target": 6.0, "better": "lower", "label": "negative-feedback callback ≤ 6 h"},
}

customer_t = table("customer")
policy_t = table("policy")
touch_t = table("touch")
outcome_t = table("outcome")
task_t = table("agent_task")
event_t = table("event")
enrollment_t = table("enrollment")
survey_t = table("survey_answer")
tier_change_t = table("tier_change")

# The figures of one group, in the order a report shows them.
METRIC_KEYS: tuple[str, ...] = (
    "planned", "delivered", "failed", "reach_rate", "delivery_rate",
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": {"from": self.start.isoformat(), "to": self.end.isoformat()},
            "computed_at": self.now.isoformat(), "by": self.by, "total": self.total, "groups": self.groups,
            "lift": self.lift, "nps_trend": self.nps_trend, "targets": self.targets,
        }



def _is_event_occurrence(occurrence: Any, ev: Any) -> Any:
    """Whether an enrollment's or task's ``occurrence`` names event ``ev``.

    The planner keys event-entry occurrences as ``event-<event row id>``; rows written by other
    systems (and older books) use the event's external id. Both count.
    """
    return sa.or_(occurrence == ev.c.external_id, occurrence == sa.literal("event-") + sa.cast(ev.c.id, sa.String))

def _ratio(num: Any, den: Any, digits: int = 4) -> float | None:
    return round(float(num) / float(den), digits) if den else None


def _hours(seconds: Any) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600.0, 2)


def _n(value: Any) -> int:
    return int(value or 0)


@dataclass(frozen=True)
class _Ctx:
    start: datetime
    end: datetime
    now: datetime
    dialect: str

    @property
    def start_day(self) -> date:
        return self.start.date()

    @property
    def end_day(self) -> date:
        return self.end.date()

    def at(self, moment: datetime) -> ColumnElement[datetime]:
        # Typed literal, so SQLite gets the same text format as the stored columns.
        return sa.literal(moment, UTCDateTime())

    def secs(self, later: Any, earlier: Any) -> ColumnElement[float]:
        return seconds_between(later, earlier, self.dialect)


def tier_at(customer_id: Any, current_tier: Any, moment: datetime) -> ColumnElement[str]:
    """The tier a customer had at ``moment``, from the tier history (see the module doc)."""
    before = tier_change_t.alias("tc_before")
    after = tier_change_t.alias("tc_after")
    latest_before = (
        sa.select(before.c.to_tier)
        .where(before.c.customer_id == customer_id, before.c.changed_at <= moment)
        .order_by(before.c.changed_at.desc(), before.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    first_after = (
        sa.select(sa.func.coalesce(after.c.from_tier, "none"))
        .where(after.c.customer_id == customer_id, after.c.changed_at > moment)
        .order_by(after.c.changed_at, after.c.id)
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(latest_before, first_after, current_tier, "none")


GroupFn = Callable[[str], "ColumnElement[Any] | None"]


def _group(
    by: str | None, ctx: _Ctx, customer: sa.FromClause, journey: Any = None, channel: Any = None
) -> ColumnElement[Any] | None:
    """The grouping column for a source, or None when the grouping does not apply to it."""
    if by is None:
        return sa.literal("all")
    if by == "tier":
        return tier_at(customer.c.id, customer.c.tier, ctx.start)
    if by == "branch":
        return sa.func.coalesce(sa.func.nullif(customer.c.branch, ""), "none")
    if by == "journey":
        return None if journey is None else sa.func.coalesce(journey, "unattributed")
    if by == "channel":
        return None if channel is None else sa.func.coalesce(channel, "unattributed")
    raise ValueError(f"unknown grouping {by!r}: choose one of {', '.join(GROUPINGS)}")


Rows = dict[str, dict[str, Any]]


def _touches(conn: sa.Connection, ctx: _Ctx, by: str | None) -> Rows:
    t, c = touch_t, customer_t
    grp = _group(by, ctx, c, journey=t.c.journey_id, channel=t.c.channel)
    if grp is None:
        return {}
    acted = sa.exists().where(outcome_t.c.touch_id == t.c.id, outcome_t.c.kind.in_(ACTED_TOUCH_KINDS))
    inner = (
        sa.select(
            grp.label("grp"),
            t.c.status.label("status"),
            sa.case((acted, 1), else_=0).label("acted"),
        )
        .select_from(t.join(c, c.c.id == t.c.customer_id))
        .where(t.c.planned_for >= ctx.start, t.c.planned_for < ctx.end)
        .subquery()
    )
    s = inner.c.status
    rows = conn.execute(
        sa.select(
            inner.c.grp,
            sa.func.sum(sa.case((s != "cancelled", 1), else_=0)),
            sa.func.sum(sa.case((s == "delivered", 1), else_=0)),
            sa.func.sum(sa.case((s == "failed", 1), else_=0)),
            sa.func.sum(sa.case((s.in_(("sent", "delivered", "failed")), 1), else_=0)),
            sa.func.sum(inner.c.acted),
            sa.func.sum(sa.case(((s == "delivered") | (inner.c.acted == 1), 1), else_=0)),
        ).group_by(inner.c.grp)
    ).all()
    out: Rows = {}
    for grp_value, planned, delivered, failed, handed, acted_n, reached in rows:
        out[grp_value] = {
            "planned": _n(planned), "delivered": _n(delivered), "failed": _n(failed),
            "reach_rate": _ratio(delivered, planned), "delivery_rate": _ratio(delivered, handed),
            "_touch_acted": _n(acted_n), "_touch_reached": _n(reached),
        }
    return out


def _first_touch(conn: sa.Connection, ctx: _Ctx, by: str | None) -> Rows:
    e, c, ev = enrollment_t, customer_t, event_t
    grp = _group(by, ctx, c, journey=e.c.journey_id)
    if grp is None:
        return {}
    # An enrollment's touches share its customer, journey and occurrence (the planner leaves
    # touch.enrollment_id empty); the customer leads so the lookup uses ix_touch_customer_due.
    t = touch_t
    first_sent = (
        sa.select(sa.func.min(t.c.sent_at))
        .where(t.c.customer_id == e.c.customer_id, t.c.journey_id == e.c.journey_id,
               t.c.occurrence == e.c.occurrence)
        .scalar_subquery()
    )
    trigger = sa.func.coalesce(ev.c.occurred_at, e.c.entered_at)
    inner = (
        sa.select(grp.label("grp"), ctx.secs(first_sent, trigger).label("secs"))
        .select_from(e.join(c, c.c.id == e.c.customer_id).outerjoin(ev, _is_event_occurrence(e.c.occurrence, ev)))
        .where(
            e.c.entered_at >= ctx.start, e.c.entered_at < ctx.end,
            sa.func.coalesce(e.c.split_branch, "") != HOLDOUT,
        )
        .subquery()
    )
    rows = conn.execute(
        sa.select(inner.c.grp, sa.func.avg(inner.c.secs)).where(inner.c.secs.is_not(None)).group_by(inner.c.grp)
    ).all()
    return {g: {"first_touch_hours": _hours(avg)} for g, avg in rows}


def _tasks(conn: sa.Connection, ctx: _Ctx, by: str | None) -> Rows:
    k, c = task_t, customer_t
    grp = _group(by, ctx, c, journey=k.c.journey_id, channel=sa.literal("agent"))
    if grp is None:
        return {}
    child = task_t.alias("child")
    has_child = sa.exists().where(child.c.parent_task_id == k.c.id)
    done = k.c.status == "done"
    inner = (
        sa.select(
            grp.label("grp"),
            sa.case((done, 1), else_=0).label("done"),
            sa.case((done, ctx.secs(k.c.completed_at, k.c.created_at))).label("secs"),
            sa.case((done | (k.c.due_at < ctx.at(ctx.now)), 1), else_=0).label("judged"),
            sa.case((done & (k.c.completed_at <= k.c.due_at), 1), else_=0).label("met"),
            sa.case((done & k.c.parent_task_id.is_(None), 1), else_=0).label("fcr_case"),
            sa.case(
                (done & k.c.parent_task_id.is_(None) & k.c.outcome_code.in_(RESOLVING_CODES) & ~has_child, 1),
                else_=0,
            ).label("fcr_ok"),
            sa.case((done & k.c.outcome_code.in_(ACTED_TASK_CODES), 1), else_=0).label("acted"),
        )
        .select_from(k.join(c, c.c.id == k.c.customer_id))
        .where(k.c.created_at >= ctx.start, k.c.created_at < ctx.end, k.c.status != "cancelled")
        .subquery()
    )
    i = inner.c
    rows = conn.execute(
        sa.select(
            i.grp, sa.func.count(), sa.func.sum(i.done), sa.func.avg(i.secs), sa.func.sum(i.judged),
            sa.func.sum(i.met), sa.func.sum(i.fcr_case), sa.func.sum(i.fcr_ok), sa.func.sum(i.acted),
        ).group_by(i.grp)
    ).all()
    out: Rows = {}
    for g, n, done_n, avg, judged, met, cases, ok, acted in rows:
        out[g] = {
            "tasks": _n(n), "task_hours": _hours(avg), "sla_judged": _n(judged), "sla_met": _n(met),
            "sla_compliance": _ratio(met, judged), "fcr_cases": _n(cases),
            "first_contact_resolution": _ratio(ok, cases), "_task_done": _n(done_n), "_task_acted": _n(acted),
        }
    return out


def _event_followups(
    conn: sa.Connection, ctx: _Ctx, by: str | None, event_type: str, limit_hours: float, only_with_task: bool
) -> dict[str, tuple[int, float | None, int, int, float | None, int]]:
    """Per group: events, avg hours to the first done task, judged, met within limit, avg closure hours, closed."""
    ev, c, k = event_t, customer_t, task_t
    grp = _group(by, ctx, c)
    if grp is None:
        return {}
    first_done = (
        sa.select(sa.func.min(k.c.completed_at))
        .where(_is_event_occurrence(k.c.occurrence, ev), k.c.status == "done")
        .scalar_subquery()
    )
    first_resolved = (
        sa.select(sa.func.min(k.c.completed_at))
        .where(_is_event_occurrence(k.c.occurrence, ev), k.c.status == "done", k.c.outcome_code == "resolved")
        .scalar_subquery()
    )
    response = ctx.secs(first_done, ev.c.occurred_at)
    limit = limit_hours * 3600
    query = (
        sa.select(
            grp.label("grp"),
            response.label("secs"),
            sa.case(
                (first_done.is_not(None), 1),
                (ctx.secs(ctx.at(ctx.now), ev.c.occurred_at) > limit, 1),
                else_=0,
            ).label("judged"),
            sa.case((response <= limit, 1), else_=0).label("met"),
            ctx.secs(first_resolved, ev.c.occurred_at).label("closure"),
        )
        .select_from(ev.join(c, c.c.id == ev.c.customer_id))
        .where(ev.c.type == event_type, ev.c.occurred_at >= ctx.start, ev.c.occurred_at < ctx.end)
    )
    if only_with_task:
        query = query.where(sa.exists().where(_is_event_occurrence(k.c.occurrence, ev)))
    inner = query.subquery()
    i = inner.c
    rows = conn.execute(
        sa.select(
            i.grp, sa.func.count(), sa.func.avg(i.secs), sa.func.sum(i.judged), sa.func.sum(i.met),
            sa.func.avg(i.closure), sa.func.count(i.closure),
        ).group_by(i.grp)
    ).all()
    return {g: (_n(n), _hours(avg), _n(j), _n(m), _hours(cl), _n(ncl)) for g, n, avg, j, m, cl, ncl in rows}


def _complaints(conn: sa.Connection, ctx: _Ctx, by: str | None) -> Rows:
    out: Rows = {}
    for g, (n, avg, judged, met, closure, _closed) in _event_followups(
        conn, ctx, by, COMPLAINT_EVENT, 24, only_with_task=False
    ).items():
        out[g] = {
            "complaints": n, "complaint_response_hours": avg, "complaint_within_24h": _ratio(met, judged),
            "closure_cycle_hours": closure,
        }
    for g, (n, avg, judged, met, _closure, _closed) in _event_followups(
        conn, ctx, by, SURVEY_EVENT, 6, only_with_task=True
    ).items():
        out.setdefault(g, {}).update({
            "negative_callbacks": n, "negative_callback_hours": avg,
            "negative_callback_within_6h": _ratio(met, judged),
        })
    return out


def _surveys(conn: sa.Connection, ctx: _Ctx, by: str | None) -> Rows:
    s, c, t = survey_t, customer_t, touch_t
    grp = _group(by, ctx, c, journey=t.c.journey_id, channel=t.c.channel)
    if grp is None:
        return {}
    inner = (
        sa.select(grp.label("grp"), s.c.kind.label("kind"), s.c.score.label("score"))
        .select_from(s.join(c, c.c.id == s.c.customer_id).outerjoin(t, t.c.id == s.c.touch_id))
        .where(s.c.answered_at >= ctx.start, s.c.answered_at < ctx.end)
        .subquery()
    )
    i = inner.c
    nps, csat = i.kind == "nps", i.kind == "csat"
    rows = conn.execute(
        sa.select(
            i.grp,
            sa.func.sum(sa.case((nps, 1), else_=0)),
            sa.func.sum(sa.case((nps & (i.score >= 9), 1), else_=0)),
            sa.func.sum(sa.case((nps & (i.score <= 6), 1), else_=0)),
            sa.func.sum(sa.case((csat, 1), else_=0)),
            sa.func.sum(sa.case((csat & (i.score >= 4), 1), else_=0)),
        ).group_by(i.grp)
    ).all()
    out: Rows = {}
    for g, answers, promoters, detractors, csat_n, satisfied in rows:
        nps_value = round((_n(promoters) - _n(detractors)) * 100.0 / _n(answers), 2) if answers else None
        out[g] = {
            "nps_answers": _n(answers), "nps": nps_value, "csat_answers": _n(csat_n),
            "csat": _ratio(satisfied, csat_n),
        }
    return out


def in_force_at(customer_id: Any, day: date) -> ColumnElement[bool]:
    return sa.exists().where(
        policy_t.c.customer_id == customer_id, policy_t.c.start_date <= day, policy_t.c.expiry_date >= day
    )


def still_held(customer_id: Any) -> ColumnElement[bool]:
    return sa.exists().where(policy_t.c.customer_id == customer_id, policy_t.c.status.in_(("active", "renewed")))


def _customers(conn: sa.Connection, ctx: _Ctx, by: str | None) -> Rows:
    c = customer_t
    grp = _group(by, ctx, c)
    if grp is None:
        return {}
    in_force = in_force_at(c.c.id, ctx.start_day)
    # Anonymised after the period ended: still a customer of that period (a purge keeps past figures).
    live = (c.c.anonymised_at.is_(None) | (c.c.anonymised_at >= ctx.end)) & (c.c.created_at < ctx.end)
    inner = sa.select(
        grp.label("grp"),
        sa.case((in_force, 1), else_=0).label("in_force"),
        sa.case((in_force & ~still_held(c.c.id), 1), else_=0).label("churned"),
        sa.case((live, 1), else_=0).label("live"),
        sa.case((live & c.c.tier.is_not(None), 1), else_=0).label("tiered"),
    ).subquery()
    i = inner.c
    rows = conn.execute(
        sa.select(
            i.grp, sa.func.sum(i.in_force), sa.func.sum(i.churned), sa.func.sum(i.live), sa.func.sum(i.tiered)
        ).group_by(i.grp)
    ).all()
    out: Rows = {}
    for g, n_in_force, churned, live_n, tiered in rows:
        churn = _ratio(churned, n_in_force)
        out[g] = {
            "in_force_at_start": _n(n_in_force), "churned": _n(churned), "churn_rate": churn,
            "retention_rate": None if churn is None else round(1 - churn, 4),
            "customers": _n(live_n), "tier_coverage": _ratio(tiered, live_n),
        }
    return out


def _renewals(conn: sa.Connection, ctx: _Ctx, by: str | None) -> Rows:
    p, c = policy_t, customer_t
    grp = _group(by, ctx, c)
    if grp is None:
        return {}
    inner = (
        sa.select(grp.label("grp"), p.c.status.label("status"))
        .select_from(p.join(c, c.c.id == p.c.customer_id))
        .where(p.c.expiry_date >= ctx.start_day, p.c.expiry_date < ctx.end_day)
        .subquery()
    )
    s = inner.c.status
    rows = conn.execute(
        sa.select(
            inner.c.grp, sa.func.count(),
            sa.func.sum(sa.case((s == "renewed", 1), else_=0)),
            sa.func.sum(sa.case((s.in_(("renewed", "lapsed", "cancelled")), 1), else_=0)),
        ).group_by(inner.c.grp)
    ).all()
    return {g: {"renewals_due": _n(n), "renewed": _n(r), "renewal_rate": _ratio(r, d)} for g, n, r, d in rows}


def _lift(conn: sa.Connection, ctx: _Ctx) -> list[dict[str, Any]]:
    e = enrollment_t
    in_period = (e.c.entered_at >= ctx.start) & (e.c.entered_at < ctx.end)
    with_holdout = sa.select(e.c.journey_id).where(in_period, e.c.split_branch == HOLDOUT).distinct()
    is_holdout = sa.case((e.c.split_branch == HOLDOUT, 1), else_=0)
    rows = conn.execute(
        sa.select(
            e.c.journey_id, is_holdout.label("holdout"), sa.func.count(),
            sa.func.sum(sa.case((e.c.exit_reason.in_(GOAL_EXIT_REASONS), 1), else_=0)),
        )
        .where(in_period, e.c.journey_id.in_(with_holdout))
        .group_by(e.c.journey_id, is_holdout)
        .order_by(e.c.journey_id)
    ).all()
    by_journey: dict[str, dict[str, Any]] = {}
    for journey, holdout, n, goals in rows:
        side = "holdout" if holdout else "treated"
        entry = by_journey.setdefault(journey, {"journey": journey})
        entry[f"{side}_enrolled"] = _n(n)
        entry[f"{side}_goals"] = _n(goals)
        entry[f"{side}_rate"] = _ratio(goals, n)
    for entry in by_journey.values():
        treated, holdout = entry.get("treated_rate"), entry.get("holdout_rate")
        entry["lift_points"] = None if treated is None or holdout is None else round(treated - holdout, 4)
        entry["relative_lift"] = _ratio((treated or 0) - (holdout or 0), holdout) if holdout and treated is not None \
            else None
    return list(by_journey.values())


def _nps_trend(conn: sa.Connection, ctx: _Ctx) -> list[dict[str, Any]]:
    """NPS per week (per 30 days for periods longer than 16 weeks) across the period."""
    span = ctx.end - ctx.start
    bucket = timedelta(days=30) if span > timedelta(weeks=16) else timedelta(days=7)
    s = survey_t
    idx = bucket_index(s.c.answered_at, ctx.at(ctx.start), int(bucket.total_seconds()), ctx.dialect)
    inner = (
        sa.select(idx.label("bucket"), s.c.score.label("score"))
        .where(s.c.kind == "nps", s.c.answered_at >= ctx.start, s.c.answered_at < ctx.end)
        .subquery()
    )
    i = inner.c
    rows = conn.execute(
        sa.select(
            i.bucket, sa.func.count(),
            sa.func.sum(sa.case((i.score >= 9, 1), else_=0)),
            sa.func.sum(sa.case((i.score <= 6, 1), else_=0)),
        ).group_by(i.bucket).order_by(i.bucket)
    ).all()
    return [
        {
            "from": (ctx.start + bucket * int(b)).isoformat(),
            "answers": _n(n), "nps": round((_n(p) - _n(d)) * 100.0 / _n(n), 2),
        }
        for b, n, p, d in rows
    ]


def _finish(values: dict[str, Any]) -> dict[str, Any]:
    """Derived figures across families, and every key present (None where it does not apply)."""
    acted = values.pop("_touch_acted", 0) + values.pop("_task_acted", 0)
    reached = values.pop("_touch_reached", 0) + values.pop("_task_done", 0)
    if "planned" in values or "tasks" in values:
        values["acted_on"], values["reached"] = acted, reached
        values["precision"] = _ratio(acted, reached)
    if "in_force_at_start" in values:
        # Customer-level grouping: no complaint event means none were filed, not "unknown".
        values.setdefault("complaints", 0)
        values["complaint_rate"] = _ratio(values["complaints"] * 100, values["in_force_at_start"], 2)
    return {key: values.get(key) for key in METRIC_KEYS}


FAMILIES = (_touches, _first_touch, _tasks, _complaints, _surveys, _customers, _renewals)


def _collect(conn: sa.Connection, ctx: _Ctx, by: str | None) -> Rows:
    merged: Rows = {}
    for family in FAMILIES:
        for grp_value, values in family(conn, ctx, by).items():
            merged.setdefault(str(grp_value), {}).update(values)
    rank = {t: i for i, t in enumerate(TIERS)}  # tiers top-down, then everything else by name
    return {g: _finish(merged[g]) for g in sorted(merged, key=lambda g: (rank.get(g, len(TIERS)), g))}


def compute_metrics(
    start: datetime,
    end: datetime,
    by: str | None = None,
    *,
    now: datetime | None = None,
    url: str | None = None,
) -> MetricsReport:
    """Every §8 figure for ``[start, end)``: the total, and per group when ``by`` is given.

    ``now`` is the moment open tasks are judged against their due time (default: the
    real now); tests and back-dated reports pass it explicitly.
    """
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}: choose one of {', '.join(GROUPINGS)}")
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise ValueError("the period must end after it starts")
    engine = get_engine(url)
    with engine.connect() as conn:
        ctx = _Ctx(start=start, end=end, now=as_utc(now) if now else utcnow(), dialect=conn.dialect.name)
        total = _collect(conn, ctx, None).get("all") or _finish({})
        groups = _collect(conn, ctx, by) if by else {}
        return MetricsReport(
            start=start, end=end, now=ctx.now, by=by, total=total, groups=groups,
            lift=_lift(conn, ctx), nps_trend=_nps_trend(conn, ctx),
        )


def churn_by_tier(start: datetime, end: datetime, url: str | None = None) -> dict[str, dict[str, Any]]:
    """In force at ``start``, churned and churn rate per tier (tier at ``start``): used by the tier review."""
    engine = get_engine(url)
    with engine.connect() as conn:
        ctx = _Ctx(start=as_utc(start), end=as_utc(end), now=as_utc(end), dialect=conn.dialect.name)
        return {
            str(g): {k: v[k] for k in ("in_force_at_start", "churned", "churn_rate")}
            for g, v in _customers(conn, ctx, "tier").items()
        }
