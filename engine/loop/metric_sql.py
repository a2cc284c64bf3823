"""What every family of §8 metric queries shares: the period, the grouping column, turning sums into figures.

The families (``engine.loop.service_metrics``, ``customer_metrics``) each run one
GROUP BY over ``[start, end)`` and group it the same way through ``group_column``, so that a tier,
journey, channel or branch means the same thing in every figure (definitions: ``engine.loop.metrics``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.sql.sqltypes import UTCDateTime

from engine.loop.sqlfn import seconds_between
from engine.loop.tables import customer_t, tier_change_t

GROUPINGS = ("tier", "journey", "channel", "branch")

# Per group value, the figures one family computed for it.
Rows = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Period:
    """The period ``[start, end)`` a report covers, the moment open tasks are judged at, and the SQL dialect."""

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


def ratio(num: Any, den: Any, digits: int = 4) -> float | None:
    return round(float(num) / float(den), digits) if den else None


def hours(seconds: Any) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600.0, 2)


def whole(value: Any) -> int:
    """An aggregate as a count: SUM over no rows is NULL, which counts as 0."""
    return int(value or 0)


def nps_score(answers: Any, promoters: Any, detractors: Any) -> float:
    """(promoters − detractors) / answers × 100; callers ask only when there are answers."""
    return round((whole(promoters) - whole(detractors)) * 100.0 / whole(answers), 2)


def is_event_occurrence(occurrence: Any, ev: Any) -> Any:
    """Whether an enrollment's or task's ``occurrence`` names event ``ev``.

    The planner keys event-entry occurrences as ``event-<event row id>``; rows written by other
    systems (and older books) use the event's external id. Both count.
    """
    return sa.or_(occurrence == ev.c.external_id, occurrence == sa.literal("event-") + sa.cast(ev.c.id, sa.String))


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


def group_column(
    by: str | None, ctx: Period, customer: sa.FromClause, journey: Any = None, channel: Any = None
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


def with_customer(source: sa.Table) -> sa.Join:
    """``source`` joined to its customer, whom the tier and branch groupings read."""
    return source.join(customer_t, customer_t.c.id == source.c.customer_id)


def grouped_rows(
    grp: ColumnElement[Any], *columns: Any, source: sa.FromClause, where: Sequence[Any] = ()
) -> sa.Subquery:
    """A family's rows to aggregate: the group value as ``grp`` beside ``columns``."""
    return sa.select(grp.label("grp"), *columns).select_from(source).where(*where).subquery()


def per_group(conn: sa.Connection, rows: sa.Subquery, *aggregates: Any, where: Any = None) -> Sequence[Any]:
    """The family's one GROUP BY: per group value, ``aggregates`` over its ``rows``."""
    query = sa.select(rows.c.grp, *aggregates)
    if where is not None:
        query = query.where(where)
    return conn.execute(query.group_by(rows.c.grp)).all()
