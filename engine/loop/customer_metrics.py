"""Customer metrics of SPEC §8: what customers say (NPS, CSAT) and keep (churn, renewals, tier coverage).

Customer-level figures have no journey or channel; survey answers follow the touch that asked
(definitions: ``engine.loop.metrics``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.loop.metric_sql import (
    Grouped,
    Period,
    customers,
    group_column,
    grouped,
    grouped_rows,
    nps_score,
    per_group,
    ratio,
    tier_at,
    whole,
    with_customer,
)
from engine.loop.sqlfn import bucket_index, count_where
from engine.loop.tables import customer_t, policy_t, survey_t, touch_t
from store.clock import to_local


def survey_figures(conn: sa.Connection, ctx: Period, by: str | None) -> Grouped | None:
    s, c, t = survey_t, customer_t, touch_t
    grp = group_column(by, ctx, c, journey=t.c.journey_id, channel=t.c.channel)
    if grp is None:
        return None
    inner = grouped_rows(
        grp, s.c.kind.label("kind"), s.c.score.label("score"),
        source=with_customer(s, ctx, by).outerjoin(t, t.c.id == s.c.touch_id),
        where=(s.c.answered_at >= ctx.start, s.c.answered_at < ctx.end),
    )
    i = inner.c
    nps, csat = i.kind == "nps", i.kind == "csat"
    rows = per_group(
        conn, inner,
        count_where(nps),
        count_where(nps & (i.score >= 9)),
        count_where(nps & (i.score <= 6)),
        count_where(csat),
        count_where(csat & (i.score >= 4)),
    )

    def figures(answers: Any, promoters: Any, detractors: Any, csat_n: Any, satisfied: Any) -> dict[str, Any]:
        return {
            "nps_answers": whole(answers), "nps": nps_score(answers, promoters, detractors) if answers else None,
            "csat_answers": whole(csat_n), "csat": ratio(satisfied, csat_n),
        }

    return grouped(rows, figures)


def nps_trend(conn: sa.Connection, ctx: Period) -> list[dict[str, Any]]:
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
            i.bucket, sa.func.count(), count_where(i.score >= 9), count_where(i.score <= 6)
        ).group_by(i.bucket).order_by(i.bucket)
    ).all()
    # Each bucket's start as the programme's local time: charts label a bucket by its date, which in UTC is
    # the day before for a period of local days east of UTC.
    return [
        {"from": to_local(ctx.start + bucket * int(b), ctx.zone).isoformat(), "answers": whole(n),
         "nps": nps_score(n, p, d)}
        for b, n, p, d in rows
    ]


def in_force_at(customer_id: Any, day: date) -> ColumnElement[bool]:
    return sa.exists().where(
        policy_t.c.customer_id == customer_id, policy_t.c.start_date <= day, policy_t.c.expiry_date >= day
    )


def still_held(customer_id: Any) -> ColumnElement[bool]:
    return sa.exists().where(policy_t.c.customer_id == customer_id, policy_t.c.status.in_(("active", "renewed")))


def customer_figures(conn: sa.Connection, ctx: Period, by: str | None) -> Grouped | None:
    c = customer_t
    grp = group_column(by, ctx, c)
    if grp is None:
        return None
    in_force = in_force_at(c.c.id, ctx.start_day)
    # Anonymised after the period ended: still a customer of that period (a purge keeps past figures).
    live = (c.c.anonymised_at.is_(None) | (c.c.anonymised_at >= ctx.end)) & (c.c.created_at < ctx.end)
    inner = grouped_rows(
        grp,
        sa.case((in_force, 1), else_=0).label("in_force"),
        sa.case((in_force & ~still_held(c.c.id), 1), else_=0).label("churned"),
        sa.case((live, 1), else_=0).label("live"),
        # The tier held at the period's end, from the tier history: the current tier would let a later
        # re-tiering change a past period's coverage.
        sa.case((live & (tier_at(c.c.id, c.c.tier, ctx.end) != "none"), 1), else_=0).label("tiered"),
        source=customers(ctx, by),
    )
    i = inner.c
    rows = per_group(conn, inner, sa.func.sum(i.in_force), sa.func.sum(i.churned), sa.func.sum(i.live),
                     sa.func.sum(i.tiered))

    def figures(n_in_force: Any, churned: Any, live_n: Any, tiered: Any) -> dict[str, Any]:
        churn = ratio(churned, n_in_force)
        return {
            "in_force_at_start": whole(n_in_force), "churned": whole(churned), "churn_rate": churn,
            "retention_rate": None if churn is None else round(1 - churn, 4),
            "customers": whole(live_n), "tier_coverage": ratio(tiered, live_n),
        }

    return grouped(rows, figures)


def renewal_figures(conn: sa.Connection, ctx: Period, by: str | None) -> Grouped | None:
    p, c = policy_t, customer_t
    grp = group_column(by, ctx, c)
    if grp is None:
        return None
    inner = grouped_rows(
        grp, p.c.status.label("status"),
        source=with_customer(p, ctx, by), where=(p.c.expiry_date >= ctx.start_day, p.c.expiry_date < ctx.end_day),
    )
    s = inner.c.status
    rows = per_group(
        conn, inner, sa.func.count(), count_where(s == "renewed"),
        count_where(s.in_(("renewed", "lapsed", "cancelled"))),
    )
    return grouped(rows, lambda n, r, d: {"renewals_due": whole(n), "renewed": whole(r), "renewal_rate": ratio(r, d)})
