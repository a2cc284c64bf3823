"""Service metrics of SPEC §8: what the programme did for customers, how soon, and how well.

Touches (reach, delivery, hours from a trigger to the first touch), agent tasks (SLA compliance,
first-contact resolution), complaint and negative-feedback handling, and the lift of journeys
with a holdout branch. Tasks are judged against their due time at the report's ``now``;
complaints and negative survey answers against the hours the programme allows (definitions:
``engine.loop.metrics``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.loop.metric_sql import (
    Grouped,
    Period,
    average,
    first_answer,
    group_column,
    grouped,
    grouped_rows,
    has_answer,
    hours,
    per_group,
    ratio,
    whole,
    with_customer,
    with_trigger_event,
)
from engine.loop.sqlfn import count_where
from engine.loop.tables import customer_t, enrollment_t, event_t, outcome_t, task_t, touch_t
from store.models import WEBHOOK_CHANNEL, TaskStatus, TouchStatus

ACTED_TOUCH_KINDS = ("replied", "clicked")
ACTED_TASK_CODES = ("reached", "resolved", "renewal_yes", "renewal_no", "call_back")
RESOLVING_CODES = ("reached", "resolved", "renewal_yes", "renewal_no")
GOAL_EXIT_REASONS = ("goal",)
HOLDOUT = "holdout"
COMPLAINT_EVENT = "complaint.filed"
SURVEY_EVENT = "survey.answered"


def counts_as_planned(status: Any) -> ColumnElement[bool]:
    """Whether a touch of this status counts as planned: all but the cancelled, withdrawn on purpose (a goal
    reached, an opt-out) before they were due. A dropped one counts: the programme meant it and did not reach.
    The report's figures and the console's journey pages count planned touches by this one rule."""
    return status != TouchStatus.CANCELLED


def counts_as_task(status: Any) -> ColumnElement[bool]:
    """Whether an agent task of this status counts as opened: all but the cancelled, which no agent was left to
    work (retention cancels a removed customer's open tasks). The report's task figures and the console's
    journey pages count tasks by this one rule."""
    return status != TaskStatus.CANCELLED


def touch_figures(conn: sa.Connection, ctx: Period, by: str | None) -> Grouped | None:
    t, c = touch_t, customer_t
    grp = group_column(by, ctx, c, journey=t.c.journey_id, channel=t.c.channel)
    if grp is None:
        return None
    acted = sa.exists().where(outcome_t.c.touch_id == t.c.id, outcome_t.c.kind.in_(ACTED_TOUCH_KINDS))
    inner = grouped_rows(
        grp, t.c.status.label("status"), sa.case((acted, 1), else_=0).label("acted"),
        source=with_customer(t, ctx, by),
        # A webhook step's call goes to another system, not to the customer: no reach or delivery.
        where=(t.c.planned_for >= ctx.start, t.c.planned_for < ctx.end, t.c.channel != WEBHOOK_CHANNEL),
    )
    s = inner.c.status
    rows = per_group(
        conn, inner,
        count_where(counts_as_planned(s)),
        count_where(s == "delivered"),
        count_where(s == "failed"),
        count_where(s.in_(("sent", "delivered", "failed"))),
        sa.func.sum(inner.c.acted),
        count_where((s == "delivered") | (inner.c.acted == 1)),
    )

    def figures(planned: Any, delivered: Any, failed: Any, handed: Any, acted_n: Any, reached: Any) -> dict[str, Any]:
        return {
            "planned": whole(planned), "delivered": whole(delivered), "failed": whole(failed),
            "reach_rate": ratio(delivered, planned), "_handed": whole(handed),
            "_touch_acted": whole(acted_n), "_touch_reached": whole(reached),
        }

    return grouped(rows, figures)


def failover_figures(conn: sa.Connection, ctx: Period, by: str | None) -> Grouped | None:
    """Per group, the channels touches failed on before going on to the next of their list: one per touch and
    channel left. A touch is counted under the channel it ended on; without these its earlier channel's failure
    was in no figure, so by channel an SMS that failed over to WeChat showed neither as an SMS attempt nor as a
    failure (``delivery_rate`` adds them to the attempts, see ``engine.loop.metrics``)."""
    t, o, c = touch_t, outcome_t, customer_t
    grp = group_column(by, ctx, c, journey=t.c.journey_id, channel=o.c.channel)
    if grp is None:
        return None
    left = (
        sa.select(grp.label("grp"), t.c.id.label("touch_id"), o.c.channel.label("channel")).distinct()
        .select_from(with_customer(t, ctx, by).join(o, o.c.touch_id == t.c.id))
        .where(
            # Every attempt comes at or after the touch's planned moment, so its failure is no earlier than the
            # period's start: the bound lets the failures of the period be found by ix_outcome_kind_time.
            o.c.kind == "failed", o.c.occurred_at >= ctx.start, o.c.channel != t.c.channel,
            t.c.planned_for >= ctx.start, t.c.planned_for < ctx.end, t.c.channel != WEBHOOK_CHANNEL,
        )
        .cte("failed_over")
    )
    rows = per_group(conn, left, sa.func.count())
    return grouped(rows, lambda n: {"failed_over": whole(n)})


def first_touch_figures(conn: sa.Connection, ctx: Period, by: str | None) -> Grouped | None:
    e, c = enrollment_t, customer_t
    grp = group_column(by, ctx, c, journey=e.c.journey_id)
    if grp is None:
        return None
    # An enrollment's touches share its customer, journey and occurrence (the planner leaves
    # touch.enrollment_id empty); ix_touch_enrollment_sent is searched by all three.
    def in_period(n: sa.FromClause) -> tuple[ColumnElement[bool], ...]:
        return (n.c.entered_at >= ctx.start, n.c.entered_at < ctx.end,
                sa.func.coalesce(n.c.split_branch, "") != HOLDOUT)

    t = touch_t
    source, event_at = with_trigger_event(with_customer(e, ctx, by), e, ctx.dialect)
    first_sent: ColumnElement[Any]
    if ctx.dialect == "postgresql":
        # One join of the period's enrollments to their touches, grouped by enrollment, which PostgreSQL
        # hashes: a correlated sub-plan searched the index once per enrollment of the month.
        n = enrollment_t.alias("period_enrollment")
        firsts = (
            sa.select(n.c.id.label("enrollment_id"), sa.func.min(t.c.sent_at).label("sent_at"))
            .select_from(n.join(t, sa.and_(t.c.customer_id == n.c.customer_id, t.c.journey_id == n.c.journey_id,
                                           t.c.occurrence == n.c.occurrence)))
            .where(*in_period(n), t.c.channel != WEBHOOK_CHANNEL)
            .group_by(n.c.id)
            .subquery("first_sent")
        )
        source = source.outerjoin(firsts, firsts.c.enrollment_id == e.c.id)
        first_sent = firsts.c.sent_at
    else:
        # SQLite joins by searching the index per enrollment anyway; the join's second pass over the period's
        # enrollments made it slower (200k: 5.7 → 6.6 s), so the look-up stays.
        first_sent = (
            sa.select(sa.func.min(t.c.sent_at))
            .where(t.c.customer_id == e.c.customer_id, t.c.journey_id == e.c.journey_id,
                   t.c.occurrence == e.c.occurrence, t.c.channel != WEBHOOK_CHANNEL)
            .scalar_subquery()
        )
    trigger = sa.func.coalesce(event_at, e.c.entered_at)
    inner = grouped_rows(
        grp, ctx.secs(first_sent, trigger).label("secs"),
        source=source, where=in_period(e),
    )
    # SUM and COUNT pass over the NULLs (nothing sent yet) by themselves; a group with nothing sent
    # at all is left out, as it was when the NULLs were filtered in SQL.
    rows = per_group(conn, inner, sa.func.sum(inner.c.secs), sa.func.count(inner.c.secs))
    return grouped(rows, lambda secs, sent: {"first_touch_hours": hours(average(secs, sent))} if sent else {})


def task_figures(conn: sa.Connection, ctx: Period, by: str | None) -> Grouped | None:
    k, c = task_t, customer_t
    grp = group_column(by, ctx, c, journey=k.c.journey_id, channel=sa.literal("agent"))
    if grp is None:
        return None
    child = task_t.alias("child")
    has_child = sa.exists().where(child.c.parent_task_id == k.c.id)
    done = k.c.status == "done"
    inner = grouped_rows(
        grp,
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
        source=with_customer(k, ctx, by),
        where=(k.c.created_at >= ctx.start, k.c.created_at < ctx.end, counts_as_task(k.c.status)),
    )
    i = inner.c
    rows = per_group(
        conn, inner,
        sa.func.count(), sa.func.sum(i.done), sa.func.sum(i.secs), sa.func.count(i.secs), sa.func.sum(i.judged),
        sa.func.sum(i.met), sa.func.sum(i.fcr_case), sa.func.sum(i.fcr_ok), sa.func.sum(i.acted),
    )

    def figures(n: Any, done_n: Any, secs: Any, timed: Any, judged: Any, met: Any, cases: Any, ok: Any,
                acted: Any) -> dict[str, Any]:
        return {
            "tasks": whole(n), "task_hours": hours(average(secs, timed)), "sla_judged": whole(judged),
            "sla_met": whole(met), "sla_compliance": ratio(met, judged), "fcr_cases": whole(cases),
            "first_contact_resolution": ratio(ok, cases), "_task_done": whole(done_n), "_task_acted": whole(acted),
        }

    return grouped(rows, figures)


def _event_followups(
    conn: sa.Connection, ctx: Period, by: str | None, event_type: str, limit_hours: float, only_with_task: bool
) -> Sequence[Any]:
    """Per group: events, seconds to the first done task (sum, count), judged, met within limit, closure
    seconds (sum, count)."""
    ev, c, k = event_t, customer_t, task_t
    grp = group_column(by, ctx, c)
    if grp is None:
        return []
    first_done = first_answer(ev, k.c.status == "done")
    first_resolved = first_answer(ev, k.c.status == "done", k.c.outcome_code == "resolved")
    response = ctx.secs(first_done, ev.c.occurred_at)
    limit = limit_hours * 3600
    where = [ev.c.type == event_type, ev.c.occurred_at >= ctx.start, ev.c.occurred_at < ctx.end]
    if only_with_task:
        where.append(has_answer(ev))
    inner = grouped_rows(
        grp,
        response.label("secs"),
        sa.case(
            (first_done.is_not(None), 1),
            (ctx.secs(ctx.at(ctx.now), ev.c.occurred_at) > limit, 1),
            else_=0,
        ).label("judged"),
        sa.case((response <= limit, 1), else_=0).label("met"),
        ctx.secs(first_resolved, ev.c.occurred_at).label("closure"),
        source=with_customer(ev, ctx, by), where=where,
    )
    i = inner.c
    return per_group(
        conn, inner,
        sa.func.count(), sa.func.sum(i.secs), sa.func.count(i.secs), sa.func.sum(i.judged), sa.func.sum(i.met),
        sa.func.sum(i.closure), sa.func.count(i.closure),
    )


def complaint_figures(conn: sa.Connection, ctx: Period, by: str | None) -> Grouped | None:
    if group_column(by, ctx, customer_t) is None:
        return None

    def complaints(n: Any, secs: Any, answered: Any, judged: Any, met: Any, closure: Any, closed: Any) -> dict[
        str, Any
    ]:
        return {
            "complaints": whole(n), "complaint_response_hours": hours(average(secs, answered)),
            "complaint_within_24h": ratio(met, judged), "closure_cycle_hours": hours(average(closure, closed)),
        }

    def callbacks(n: Any, secs: Any, answered: Any, judged: Any, met: Any, _closure: Any, _closed: Any) -> dict[
        str, Any
    ]:
        return {
            "negative_callbacks": whole(n), "negative_callback_hours": hours(average(secs, answered)),
            "negative_callback_within_6h": ratio(met, judged),
        }

    filed = grouped(_event_followups(conn, ctx, by, COMPLAINT_EVENT, 24, only_with_task=False), complaints)
    called = grouped(_event_followups(conn, ctx, by, SURVEY_EVENT, 6, only_with_task=True), callbacks)
    groups = {g: dict(values) for g, values in filed.groups.items()}
    for g, values in called.groups.items():
        groups.setdefault(g, {}).update(values)
    return Grouped(groups, {**filed.total, **called.total}, {**filed.empty, **called.empty})


def lift_by_journey(conn: sa.Connection, ctx: Period) -> list[dict[str, Any]]:
    e = enrollment_t
    # In a branch: an enrollment no split placed (entered under a version without one, or not at it yet) is in
    # neither arm; as treated it diluted the goal rate, and the journey page's experiment did not count it.
    in_period = (e.c.entered_at >= ctx.start) & (e.c.entered_at < ctx.end) & e.c.split_branch.is_not(None)
    is_holdout = sa.case((e.c.split_branch == HOLDOUT, 1), else_=0)
    # One pass over the period's enrollments; the journeys without a holdout row are dropped here
    # rather than by a second pass that finds the journeys with one.
    rows = conn.execute(
        sa.select(
            e.c.journey_id, is_holdout.label("holdout"), sa.func.count(),
            count_where(e.c.exit_reason.in_(GOAL_EXIT_REASONS)),
        )
        .where(in_period)
        .group_by(e.c.journey_id, is_holdout)
        .order_by(e.c.journey_id)
    ).all()
    with_holdout = {journey for journey, holdout, _n, _goals in rows if holdout}
    by_journey: dict[str, dict[str, Any]] = {}
    for journey, holdout, n, goals in rows:
        if journey not in with_holdout:
            continue
        side = "holdout" if holdout else "treated"
        entry = by_journey.setdefault(journey, {"journey": journey})
        entry[f"{side}_enrolled"] = whole(n)
        entry[f"{side}_goals"] = whole(goals)
        entry[f"{side}_rate"] = ratio(goals, n)
    for entry in by_journey.values():
        treated, holdout = entry.get("treated_rate"), entry.get("holdout_rate")
        entry["lift_points"] = None if treated is None or holdout is None else round(treated - holdout, 4)
        entry["relative_lift"] = ratio((treated or 0) - (holdout or 0), holdout) if holdout and treated is not None \
            else None
    return list(by_journey.values())
