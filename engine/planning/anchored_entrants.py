"""Entrants of date entries on any date field: a policy date (start, premium due, grace period end,
or expiry every year) or a date attribute of the customer, once or every year.

One query per journey and chunk: policies whose anchor date can fire in the window (a date range
in SQL for one-off entries; every active policy with the date for anniversaries, whose month and
day are matched here), or the chunk's customers' attributes. The dates themselves are worked out
by ``engine.planning.occurrences.anchored_fires``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select as _sa_select
from sqlmodel import Session, col

from engine.language.journey_model import DateEntry
from engine.planning.facts import POLICY_FACT_COLUMNS, fetch_rows, policy_fact
from engine.planning.occurrences import anchor_date_range, anchored_fires, as_anchor_date, birth_md_candidates
from store.models import Customer, Policy

select: Any = _sa_select

# (customer id, occurrence, due, scope) of one entrant.
Anchored = tuple[int, str, datetime, dict[str, Any]]


def anchored_entrants(session: Session, entry: DateEntry, customer_scope: Any, tier_clause: Any,
                      start: datetime, end: datetime) -> Iterator[Anchored]:
    """Entrants of ``entry`` (anchored on ``policy.<date>`` or ``customer.attributes.<name>``)
    whose due time falls in (start, end], among the customers ``customer_scope`` selects."""
    head, _, name = entry.anchor.partition(".")
    if head == "policy":
        column = getattr(Policy, name)
        query = (select(Policy.id, Policy.customer_id, Customer.timezone, *POLICY_FACT_COLUMNS)
                 .join(Customer, col(Customer.id) == col(Policy.customer_id))
                 .where(customer_scope, tier_clause, Policy.status == "active", col(column).is_not(None)))
        first, last = anchor_date_range(start, end, entry.offset, entry.on_non_working_day)
        if entry.every:
            codes = _month_days(entry, start, end)
            # Narrowed in SQL by month and day: fetching every active policy's row to drop all but a few
            # hundredths of them in Python cost a second of CPU per 100k customers and day.
            query = query.where(col(column) <= last, _month_day(column, session.get_bind().dialect.name).in_(codes))
        else:
            query = query.where(col(column) >= first, col(column) <= last)
        for row in session.execute(query).all():
            day = getattr(row, name)
            for suffix, due in anchored_fires(day, entry.every, entry.at, entry.offset, row.timezone, start, end,
                                              entry.on_non_working_day):
                yield row.customer_id, f"policy-{row.id}-{name}-{suffix}", due, policy_fact(row)
        return
    attribute = name.removeprefix("attributes.")
    rows = fetch_rows(session, select(Customer.id, Customer.timezone, Customer.attributes)
                      .where(customer_scope, tier_clause))
    may_fire = _may_fire(entry, start, end)
    for cid, tz, attributes in rows:
        day = as_anchor_date((attributes or {}).get(attribute))
        if day is None or not may_fire(day):
            continue
        for suffix, due in anchored_fires(day, entry.every, entry.at, entry.offset, tz, start, end,
                                          entry.on_non_working_day):
            yield cid, f"attribute-{attribute}-{suffix}", due, {}


def _may_fire(entry: DateEntry, start: datetime, end: datetime) -> Callable[[date], bool]:
    """Whether an anchor date can fire in (start, end] at all: a superset, cheap enough to ask of every row.

    Working out each date's fires (its zone, the clock, the offset) is what costs; the policy query asks
    the same of the database (``_month_day``), a date attribute is asked here."""
    if entry.every is None:
        first, last = anchor_date_range(start, end, entry.offset, entry.on_non_working_day)
        return lambda day: first <= day <= last
    codes = _month_days(entry, start, end)
    return lambda day: day.month * 100 + day.day in codes


def _month_days(entry: DateEntry, start: datetime, end: datetime) -> frozenset[int]:
    """``month * 100 + day`` of the anchor dates whose anniversary can land in (start, end] (29 February
    standing for 28 February in other years)."""
    return frozenset(birth_md_candidates(start, end, entry.offset, entry.on_non_working_day))


def _month_day(column: Any, dialect: str) -> Any:
    """``month * 100 + day`` of a date column in SQL (the code ``birth_md_candidates`` lists); SQLite keeps
    dates as ISO text."""
    if dialect == "sqlite":
        return sa.cast(sa.func.strftime("%m%d", column), sa.Integer)
    return sa.cast(sa.extract("month", column) * 100 + sa.extract("day", column), sa.Integer)
