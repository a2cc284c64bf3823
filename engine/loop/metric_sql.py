"""What every family of §8 metric queries shares: the period, the grouping column, turning sums into figures.

The families (``engine.loop.service_metrics``, ``customer_metrics``) each run one
GROUP BY over ``[start, end)`` and group it the same way through ``group_column``, so that a tier,
journey, channel or branch means the same thing in every figure (definitions: ``engine.loop.metrics``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.sql.sqltypes import UTCDateTime

from engine.loop.sqlfn import seconds_between
from engine.loop.tables import customer_t, event_t, task_t, tier_change_t
from store.clock import to_local

GROUPINGS = ("tier", "journey", "channel", "branch")

# Per group value, the figures one family computed for it.
Rows = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Grouped:
    """What one family computed: per group value its figures, and the same figures over every group's rows."""

    groups: Rows
    total: dict[str, Any] = field(default_factory=dict)
    # The figures of a group this family applies to but has no rows in: its counts 0, its rates None.
    # A group another family found (a tier with customers but no touches) takes these, so that a
    # count reads 0 there, as it does for a group with rows, and not "no figure".
    empty: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Period:
    """The period ``[start, end)`` a report covers, the moment open tasks are judged at, and the SQL dialect."""

    start: datetime
    end: datetime
    now: datetime
    dialect: str
    # The zone whose calendar the policies' dates are in (the programme's): a period of local days starts
    # at a local midnight, which is the day before in UTC for a zone east of it.
    zone: str = "UTC"
    # The tiers at the start, worked out once for a whole report (``tiers_once``); else per statement.
    tier_table: sa.FromClause | None = None

    @property
    def start_day(self) -> date:
        return to_local(self.start, self.zone).date()

    @property
    def end_day(self) -> date:
        return to_local(self.end, self.zone).date()

    def at(self, moment: datetime) -> ColumnElement[datetime]:
        # Typed literal, so SQLite gets the same text format as the stored columns.
        return sa.literal(moment, UTCDateTime())

    def secs(self, later: Any, earlier: Any) -> ColumnElement[float]:
        return seconds_between(later, earlier, self.dialect)

    @cached_property
    def tiers(self) -> sa.FromClause:
        """Each customer's tier at the start of the period (``tier_at``): the table ``tiers_once`` filled, else
        worked out once per statement (MATERIALIZED) and joined, rather than looked up for every row."""
        if self.tier_table is not None:
            return self.tier_table
        return tier_select(self.start).cte("customer_tier").prefix_with("MATERIALIZED")


def tier_select(moment: datetime) -> sa.Select[Any]:
    """``(customer_id, tier)``: every customer's tier at ``moment``."""
    c = customer_t
    return sa.select(c.c.id.label("customer_id"), tier_at(c.c.id, c.c.tier, moment).label("tier"))


# Per connection (a temporary table), so concurrent reports do not see each other's.
TIER_TABLE = sa.Table(
    "report_customer_tier", sa.MetaData(),
    sa.Column("customer_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tier", sa.String(16), nullable=False),
    prefixes=["TEMPORARY"],
)


@contextmanager
def tiers_once(conn: sa.Connection, ctx: Period) -> Iterator[Period]:
    """``ctx`` reading every customer's tier at the start from a temporary table filled here, once.

    Looking the tier up in the history costs two index searches per customer; a report by tier
    runs one statement per family, and each paid that again for the whole book (about 0.5 s of CPU
    per 100,000 customers every time, on SQLite). The table is the connection's own and goes when
    it is done.
    """
    TIER_TABLE.drop(conn, checkfirst=True)  # left over by a report that failed on this pooled connection
    TIER_TABLE.create(conn)
    conn.execute(sa.insert(TIER_TABLE).from_select(["customer_id", "tier"], tier_select(ctx.start)))
    if ctx.dialect == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {TIER_TABLE.name}")  # a temporary table has no statistics until asked
    yield replace(ctx, tier_table=TIER_TABLE)
    TIER_TABLE.drop(conn)
    # SQLite's driver opened a transaction for the insert and the drop: without the commit, closing the
    # connection would roll the drop back and leave the table on the pooled connection.
    conn.commit()


def without_jit(conn: sa.Connection) -> None:
    """Switch PostgreSQL's JIT compiler off for the rest of ``conn``'s transaction (nothing on SQLite).

    A report's statements each read a month of a book once, and their estimated cost (correlated look-ups
    per row) is over every JIT threshold: PostgreSQL compiled and optimised the expressions of each statement
    before running it, which cost more than running it (50k customers: ``EXPLAIN ANALYZE`` of the first touch
    showed 2.2 s of JIT in 5.8 s; the whole report's SQL took half the time without it). Transaction-
    local (``set_config(..., true)``), so the pooled connection goes back with the server's setting.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.set_config("jit", "off", True)))


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


def named_event_id(occurrence: Any, dialect: str) -> ColumnElement[int]:
    """The event row id an occurrence of the planner's form ``event-<id>`` names, else NULL.

    Only ``event-`` and up to 18 digits without a leading zero pass, which is exactly the text
    of an id, so the cast cannot fail (PostgreSQL) or read another number (SQLite's lenient
    cast); the CASE makes the test run before the cast.
    """
    if dialect == "postgresql":
        planner_form: ColumnElement[bool] = occurrence.op("~")("^event-[1-9][0-9]{0,17}$")
    else:
        digits = sa.func.substr(occurrence, 7)
        planner_form = sa.and_(occurrence.op("GLOB")("event-[1-9]*"), sa.not_(digits.op("GLOB")("*[^0-9]*")),
                               sa.func.length(occurrence) <= 24)
    return sa.case((planner_form, sa.cast(sa.func.substr(occurrence, 7), sa.BigInteger)))


def with_trigger_event(source: sa.FromClause, row: sa.FromClause, dialect: str) -> tuple[sa.Join, ColumnElement[Any]]:
    """``source`` outer-joined to the event that triggered ``row`` (an enrollment), and that event's ``occurred_at``.

    ``row.event_id`` names it (migration 0005). Rows the planner wrote without it still name it
    in ``occurrence``: the planner's ``event-<row id>``, or the event's external id for rows
    other systems wrote. Those two are looked up only where ``event_id`` is empty, each through
    one of the event's own keys (the primary key, the unique external id), never by comparing
    every row with every event.
    """
    keyed, planner, external = (event_t.alias(name) for name in ("ev_keyed", "ev_planner", "ev_external"))
    unkeyed = row.c.event_id.is_(None)
    joined = (
        source.outerjoin(keyed, keyed.c.id == row.c.event_id)
        .outerjoin(planner, sa.and_(unkeyed, planner.c.id == named_event_id(row.c.occurrence, dialect)))
        .outerjoin(external, sa.and_(unkeyed, external.c.external_id == row.c.occurrence))
    )
    return joined, sa.func.coalesce(keyed.c.occurred_at, planner.c.occurred_at, external.c.occurred_at)


def _answering_tasks(ev: sa.FromClause, column: Any) -> list[sa.Select[Any]]:
    """``column`` of the tasks that answer event ``ev``, in selects whose results add up.

    The first finds tasks by ``event_id`` (its index); the others, tasks written without it whose
    occurrence names ``ev`` in either form (``ix_agent_task_unkeyed_occurrence``, one equality
    each: SQLite serves ``occurrence IN (a, b)`` from the wrong index). Where a single OR would
    scan every task for every event, UNION ALL of these finds each one's few; a task named both
    ways shows twice, which neither the earliest moment nor "any" minds. The WHERE clauses hold
    nothing but these keys, so no other index of the table (by status, say) can look better to
    the planner; conditions on the task go into ``column``.
    """
    k = task_t
    unkeyed = k.c.event_id.is_(None)
    return [
        sa.select(column).where(k.c.event_id == ev.c.id),
        sa.select(column).where(unkeyed, k.c.occurrence == sa.literal("event-") + sa.cast(ev.c.id, sa.String)),
        sa.select(column).where(unkeyed, k.c.occurrence == ev.c.external_id),
    ]


def first_answer(ev: sa.FromClause, *conditions: Any) -> ColumnElement[Any]:
    """When the first task answering event ``ev`` and meeting ``conditions`` was completed; NULL if none was."""
    done_at = sa.case((sa.and_(*conditions), task_t.c.completed_at)) if conditions else task_t.c.completed_at
    earliest: Any = sa.literal_column("1").asc().nulls_last()  # position 1: a compound SELECT orders by its columns
    return sa.union_all(*_answering_tasks(ev, done_at)).order_by(earliest).limit(1).scalar_subquery()


def has_answer(ev: sa.FromClause) -> ColumnElement[bool]:
    """Whether any task answers event ``ev``."""
    return sa.or_(*(sa.exists(select) for select in _answering_tasks(ev, sa.literal(1))))


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
        return ctx.tiers.c.tier  # the source joined it (with_customer, customers)
    if by == "branch":
        return sa.func.coalesce(sa.func.nullif(customer.c.branch, ""), "none")
    if by == "journey":
        return None if journey is None else sa.func.coalesce(journey, "unattributed")
    if by == "channel":
        return None if channel is None else sa.func.coalesce(channel, "unattributed")
    raise ValueError(f"unknown grouping {by!r}: choose one of {', '.join(GROUPINGS)}")


def customers(ctx: Period, by: str | None) -> sa.FromClause:
    """The customers, with their tier at the period's start when grouping by tier."""
    if by == "tier":
        return customer_t.join(ctx.tiers, ctx.tiers.c.customer_id == customer_t.c.id)
    return customer_t


def with_customer(source: sa.Table, ctx: Period, by: str | None) -> sa.Join:
    """``source`` joined to its customer, whom the tier and branch groupings read.

    By tier, to the customer's tier alone: it holds a row for every customer and is all the grouping
    reads, so the same rows come through with one look-up per row instead of two.
    """
    if by == "tier":
        return source.join(ctx.tiers, ctx.tiers.c.customer_id == source.c.customer_id)
    return source.join(customer_t, customer_t.c.id == source.c.customer_id)


def grouped_rows(
    grp: ColumnElement[Any], *columns: Any, source: sa.FromClause, where: Sequence[Any] = ()
) -> sa.CTE:
    """A family's rows to aggregate: the group value as ``grp`` beside ``columns``.

    MATERIALIZED, so that each column is worked out once per row: both databases otherwise fold
    the rows into the aggregate query and work a column out again for every aggregate naming it
    (a sum and a count of the same seconds ran the first-touch look-up twice per enrollment).
    """
    return sa.select(grp.label("grp"), *columns).select_from(source).where(*where).cte("family_rows").prefix_with(
        "MATERIALIZED"
    )


def per_group(conn: sa.Connection, rows: sa.CTE, *aggregates: Any, where: Any = None) -> Sequence[Any]:
    """The family's one GROUP BY: per group value, ``aggregates`` over its ``rows``.

    Every aggregate adds up across groups (a count or a sum; an average is asked as its sum and
    count), so that ``grouped`` can work out the total from the groups without a second pass.
    """
    query = sa.select(rows.c.grp, *aggregates)
    if where is not None:
        query = query.where(where)
    return conn.execute(query.group_by(rows.c.grp)).all()


def _added(values: Sequence[Any]) -> Any:
    """Column total of additive aggregates; NULL (no row had a value) stays NULL."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, int) for v in present):
        return sum(present)
    return math.fsum(float(v) for v in present)


def grouped(rows: Sequence[Sequence[Any]], figures: Callable[..., dict[str, Any]]) -> Grouped:
    """Per group value, ``figures(*aggregates)`` of its row of ``per_group``; the total, ``figures`` of the
    aggregates added up over the groups (with no rows at all, those of no rows). A group whose figures come
    out empty is left out."""
    # Aggregates over no rows: COUNT gives 0 and SUM NULL, which every figure reads as 0.
    empty = figures(*(None for _ in inspect.signature(figures).parameters))
    groups = {row[0]: values for row in rows if (values := figures(*row[1:]))}
    if not rows:
        return Grouped(groups, dict(empty), empty)
    total = figures(*(_added(column) for column in zip(*(row[1:] for row in rows), strict=True)))
    return Grouped(groups, total, empty)


def average(total: Any, count: Any) -> float | None:
    """An average asked as its sum and count (see ``per_group``)."""
    return float(total) / float(count) if count else None
