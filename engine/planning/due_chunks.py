"""Which chunks of the book have anything due in a run's window: a run plans only those.

A 5-minute tick of ``journeys run`` used to read every chunk of the book (each chunk's tiers and
zones, its waiting enrollments, its events) only to find, most of the time, nothing to do:
0.57 s of CPU per 100k customers, so the cost of a tick grew with the book, not with its work.
Before the chunks, ``due_ranges`` asks each source once of the whole book, through indexes on
the moment things fall due: waits that end (``ix_enrollment_waiting_next``, waiting rows by
``next_at``), unprocessed events (``processed_at``), birthdays (``ix_customer_birth_md``),
policy expiries and claim settlements (their dates). A scheduled or holiday entry that fires in
the window for any zone makes every chunk due: that is the day's work, and it is all read anyway.

The probe may name a customer with nothing to do (the chunk is planned and finds nothing); it
never misses one, because it asks the same questions as ``engine.planning.candidates``, on the
whole book, without the conditions that only narrow them further (tiers, audience, re-entry).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import literal_column, text
from sqlalchemy import select as _sa_select
from sqlmodel import Session, col

from engine.language.durations import parse_duration
from engine.planning.candidates import Candidates
from engine.planning.occurrences import anchor_date_range, clock, cron_fires, holiday_fires, local_naive, place
from store.models import Claim, Customer, Enrollment, Event, Policy

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed
# select() overloads reject; the queries here select plain columns, so use it untyped.
select: Any = _sa_select


def chunk_ranges(lo: int, hi: int, chunk: int) -> list[tuple[int, int]]:
    """The (first, last) customer ids of each chunk of ``chunk`` ids covering ``lo``..``hi``."""
    return [(first, min(first + chunk - 1, hi)) for first in range(lo, hi + 1, chunk)]


def due_ranges(candidates: Candidates, lo: int, hi: int, chunk: int) -> list[tuple[int, int]]:
    """The chunks of ``lo``..``hi`` (``chunk`` ids each, as ``chunk_ranges`` cuts them) holding a
    customer who may have something due in the run of ``candidates``."""
    ranges = chunk_ranges(lo, hi, chunk)
    due = due_customers(candidates, lo, hi)
    if due is None:
        return ranges
    wanted = {(cid - lo) // chunk for cid in due if lo <= cid <= hi}
    return [ranges[k] for k in sorted(wanted)]


def due_customers(candidates: Candidates, lo: int, hi: int) -> set[int] | None:
    """Customer ids in ``lo``..``hi`` that may have something due; None when a schedule or holiday
    firing in the window makes everyone due."""
    c = candidates
    due: set[int] = set()
    dated = []
    for lj in c.journeys:
        first, last = c.window(lj)
        if first >= last:
            continue
        entry = lj.journey.entry
        if entry.schedule is not None and "schedule" in c.sources:
            if any(cron_fires(entry.schedule.cron, tz, first, last) for tz in c.zones()):
                return None
        elif entry.date is not None and "date" in c.sources:
            if entry.date.anchor == "holiday":
                if any(holiday_fires(list(entry.date.holidays or []), entry.date.at, entry.date.offset, tz, first,
                                     last, entry.date.on_non_working_day) for tz in c.zones()):
                    return None
            elif _fires_between(entry.date, first, last, c.zones()):
                dated.append((lj, first, last))
    for lj, first, last in dated:
        # The candidates' own query, so that the probe finds exactly the entries due in the window
        # (a date range in SQL is whole days; the due moment is each customer's local time). For
        # policies and claims it is asked of the customers their date index names first: over the
        # whole book's id range, the databases would read every policy or claim by customer.
        tiers = lj.journey.audience.tiers
        tier_clause = col(Customer.tier).in_(tiers) if tiers else True
        ids = _anchored(c, lj.journey.entry.date, first, last)
        if ids is not None and not ids:
            continue
        due.update(e.customer_id for e in c._date_entrants(lj, lo, hi, ids, tier_clause, first, last))
    if "events" in c.sources:
        query = select(Event.customer_id).where(col(Event.occurred_at) <= c.now)
        if c.event_ids is not None:
            query = query.where(col(Event.id).in_(c.event_ids))
        else:
            query = query.where(col(Event.processed_at).is_(None))
        due.update(_ids(c, query))
    journeys = sorted({lj.id for lj in c.journeys})
    # One query per way a wait ends, each a range of the waiting rows by next_at: an OR of them
    # would make the databases read every waiting row.
    for clause in c.wait_ends() if journeys else []:
        due.update(_ids(c, select(Enrollment.customer_id).where(
            col(Enrollment.state) == literal_column("'waiting'"), col(Enrollment.journey_id).in_(journeys), clause)))
    if c.customer_ids is not None:
        due &= set(c.customer_ids)
    return due


def _ids(c: Candidates, query: Any) -> Iterable[int]:
    # No DISTINCT (the callers keep sets): with it SQLite walks the waiting rows in customer order
    # (ix_enrollment_waiting) to drop repeats instead of reading the due range of next_at
    # (ix_enrollment_waiting_next), so a tick read every waiting row of the book.
    return (cid for (cid,) in c.session.execute(query).all())


def _fires_between(entry: Any, first: datetime, last: datetime, zones: Sequence[str]) -> bool:
    """Whether a date entry can fire in (first, last] in any of ``zones`` at all: it fires at one
    wall-clock time of day (``at`` shifted by the offset; a move to a working day moves whole days),
    so a 5-minute tick that holds that time in no zone has nothing of it due, and its rows (a day's
    birthdays, a few days' expiries: the SQL ranges are whole days) need not be read."""
    fire_time = (datetime.combine(date(2000, 1, 1), clock(entry.at)) + parse_duration(entry.offset)).time()
    for tz in zones:
        day = local_naive(first, tz).date() - timedelta(days=1)
        last_day = local_naive(last, tz).date() + timedelta(days=1)
        while day <= last_day:
            if first < place(datetime.combine(day, fire_time), tz) <= last:
                return True
            day += timedelta(days=1)
    return False


def _anchored(c: Candidates, entry: Any, first: datetime, last: datetime) -> list[int] | None:
    """Customers whose policy expiry or claim settlement (by its date index) falls near the window;
    None for other anchors (birthdays have an index the candidates' query uses as it is)."""
    if entry.anchor not in ("policy.expiry_date", "claim.settled_at") or entry.every is not None:
        return None  # an anniversary's date lies years before the window
    lo_day, hi_day = anchor_date_range(first, last, entry.offset, entry.on_non_working_day)
    if entry.anchor == "policy.expiry_date":
        query = select(Policy.customer_id).where(col(Policy.expiry_date) >= lo_day, col(Policy.expiry_date) <= hi_day)
    else:  # a day either side: the settlement's local date is the anchor, in any zone
        query = select(Claim.customer_id).where(col(Claim.settled_at) >= _midnight(lo_day - timedelta(days=1)),
                                                col(Claim.settled_at) < _midnight(hi_day + timedelta(days=2)))
    return sorted(set(_ids(c, query)))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# The distinct zones of the book by hopping along ``ix_customer_timezone`` from one zone to the
# next (a "loose index scan", one index probe per zone): ``SELECT DISTINCT`` would read an entry
# per customer, every tick. Both databases run it as written.
_ZONES = text(
    "WITH RECURSIVE zones(tz) AS ("
    " SELECT MIN(timezone) FROM customer"
    " UNION ALL"
    " SELECT (SELECT MIN(c.timezone) FROM customer c WHERE c.timezone > zones.tz) FROM zones WHERE zones.tz IS NOT NULL"
    ") SELECT tz FROM zones WHERE tz IS NOT NULL")


def book_zones(session: Session) -> list[str]:
    """The time zones the book's customers live in."""
    return [tz for (tz,) in session.execute(_ZONES).all()]
