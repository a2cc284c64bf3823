"""When things are due: cron cadences and date anchors, in the customer's local time.

Rules, all in the customer's own zone (``Customer.timezone``):
- A cron fires at its wall-clock time. Local times are computed naively and then placed in
  the zone, so "Monday 10:00" stays 10:00 across daylight-saving changes. A wall time that
  does not exist (the spring-forward gap) is read with the offset in force before the
  change (02:30 → 03:30 daylight time); one that happens twice (fall back) fires once, at
  the first (``fold=0``).
- A date anchor (birthday, policy expiry, claim settlement, holiday) fires at
  ``anchor date + offset`` at the entry's ``at`` time, with the offset applied to the wall
  clock (``-30d`` at 10:00 is 10:00 thirty calendar days earlier, whatever DST does).
- **29 February birthdays**: in a year without 29 February the birthday is kept on
  **28 February** (the last day of the customer's birth month, so the greeting never slips
  into March and is never skipped).
- A claim's anchor date is the local calendar date its settlement happened on.
- A holiday anchors on the day its own calendar puts it (``engine.language.festivals``): the
  lunar ones from the lunisolar calendar (Spring Festival 2027 → 2027-02-06, Mid-Autumn 2028 →
  2028-10-03), Qingming from its solar term, the others by date. Each listed holiday is its own
  occurrence (``mid_autumn-2031``, ``national_day-2031``), even when two share a day.
- Any other date field (``policy.start_date``, ``policy.premium_due_date``,
  ``customer.attributes.vehicle_inspection_due``) anchors the same way, once on its date or,
  with ``every: year``, on each anniversary after it; **29 February** anniversaries are kept on
  **28 February** in other years, as birthdays are (``anchored_fires``).
- ``on_non_working_day: next_working_day`` moves a date entry's fire whose local day is not a
  working day (``engine.language.work_calendar``) to the same wall time on the first working
  day after it, ``previous_working_day`` to the last working day before it (a reminder due
  before a date must not move past it); the occurrence keeps its name.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Literal

from croniter import croniter

from engine.language import work_calendar
from engine.language.durations import parse_duration
from engine.language.festivals import festival_date
from engine.language.local_time import clock, local_naive, place
from store.clock import out_of_range


def occurrence_label(naive_local: datetime) -> str:
    return naive_local.strftime("%Y-%m-%dT%H:%M")


@lru_cache(maxsize=4096)
def cron_fires(cron: str, tz: str, start: datetime, end: datetime) -> tuple[tuple[str, datetime], ...]:
    """(occurrence label, UTC due time) of every firing of ``cron`` in ``tz`` within (start, end]."""
    lo = local_naive(start, tz) - timedelta(days=1)
    hi = local_naive(end, tz) + timedelta(days=1)
    it = croniter(cron, lo - timedelta(minutes=1))
    out: list[tuple[str, datetime]] = []
    seen: set[datetime] = set()
    while True:
        naive = it.get_next(datetime)
        if naive > hi:
            break
        if naive in seen:
            continue
        seen.add(naive)
        due = place(naive, tz)
        if start < due <= end:
            out.append((occurrence_label(naive), due))
    return tuple(out)


def next_cron_fire(cron: str, tz: str, after: datetime) -> tuple[str, datetime]:
    """The first firing strictly after ``after``."""
    it = croniter(cron, local_naive(after, tz) - timedelta(days=1))
    while True:
        naive = it.get_next(datetime)
        due = place(naive, tz)
        if due > after:
            return occurrence_label(naive), due


def birthday_in(birthday: date, year: int) -> date:
    """The customer's birthday in ``year``; 29 Feb becomes 28 Feb in a non-leap year."""
    if birthday.month == 2 and birthday.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return birthday.replace(year=year)


# A yearly anniversary follows the birthday's rule: 29 February is kept on 28 February.
anniversary_in = birthday_in


# What a date entry does with a fire on a day that is not a working day (DateEntry.on_non_working_day).
NonWorkingDay = Literal["keep", "next_working_day", "previous_working_day"]


def anchor_fire(anchor: date, at: str, offset: str, tz: str, on_non_working_day: NonWorkingDay = "keep") -> datetime:
    """UTC due time of an anchor date at local ``at`` shifted by ``offset`` on the wall clock."""
    naive = datetime.combine(anchor, clock(at)) + parse_duration(offset)
    if on_non_working_day != "keep":
        working = (work_calendar.first_working_day_from(naive.date()) if on_non_working_day == "next_working_day"
                   else work_calendar.last_working_day_to(naive.date()))
        naive += timedelta(days=(working - naive.date()).days)
    return place(naive, tz)


def anchor_date_range(
    start: datetime, end: datetime, offset: str, on_non_working_day: NonWorkingDay = "keep"
) -> tuple[date, date]:
    """Anchor dates whose fire can land in (start, end] for any zone (a superset, for SQL)."""
    delta = parse_duration(offset)
    # Local dates differ from UTC dates by at most a day either side.
    lo = (start - delta).date() - timedelta(days=2)
    hi = (end - delta).date() + timedelta(days=2)
    if on_non_working_day == "next_working_day":
        # A fire moved into the window comes from the run of days off just before it.
        first_local = start.date() - timedelta(days=2)
        lo -= timedelta(days=work_calendar.current().days_off_before(first_local))
    elif on_non_working_day == "previous_working_day":
        # A fire moved back into the window comes from the run of days off just after it.
        last_local = end.date() + timedelta(days=2)
        hi += timedelta(days=work_calendar.current().days_off_after(last_local))
    return lo, hi


def birthday_fires(
    birthday: date, at: str, offset: str, tz: str, start: datetime, end: datetime,
    on_non_working_day: NonWorkingDay = "keep",
) -> list[tuple[str, datetime]]:
    """(occurrence label, due) of the birthday greetings falling in (start, end]."""
    out = []
    lo, hi = anchor_date_range(start, end, offset, on_non_working_day)
    for year in range(lo.year, hi.year + 1):
        day = birthday_in(birthday, year)
        due = anchor_fire(day, at, offset, tz, on_non_working_day)
        if start < due <= end:
            out.append((f"birthday-{year}", due))
    return out


def birth_md_candidates(
    start: datetime, end: datetime, offset: str, on_non_working_day: NonWorkingDay = "keep"
) -> list[int]:
    """``birth_md`` codes (month*100+day) whose greeting may fall in (start, end] (for SQL)."""
    lo, hi = anchor_date_range(start, end, offset, on_non_working_day)
    codes: set[int] = set()
    for day in _dates(lo, hi):
        codes.add(day.month * 100 + day.day)
        if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
            codes.add(229)  # celebrated on 28 Feb in non-leap years
    return sorted(codes)


def _dates(lo: date, hi: date) -> Iterator[date]:
    day = lo
    while day <= hi:
        yield day
        day += timedelta(days=1)


def holiday_date(name: str, year: int) -> date:
    """The day holiday ``name`` (a key of ``catalogue.HOLIDAYS``) falls on in ``year``."""
    return festival_date(name, year)


def holiday_fires(
    names: list[str], at: str, offset: str, tz: str, start: datetime, end: datetime,
    on_non_working_day: NonWorkingDay = "keep",
) -> list[tuple[str, datetime]]:
    """(occurrence label, due) for each listed holiday falling in (start, end] in ``tz``."""
    lo, hi = anchor_date_range(start, end, offset, on_non_working_day)
    out = []
    for year in range(lo.year, hi.year + 1):
        for name in names:
            due = anchor_fire(holiday_date(name, year), at, offset, tz, on_non_working_day)
            if start < due <= end:
                out.append((f"{name}-{year}", due))
    return sorted(out, key=lambda pair: (pair[1], pair[0]))


def anchored_fires(
    anchor: date, every: str | None, at: str, offset: str, tz: str, start: datetime, end: datetime,
    on_non_working_day: NonWorkingDay = "keep",
) -> list[tuple[str, datetime]]:
    """(occurrence suffix, due) of a date entry on any date field falling in (start, end].

    One-off: the anchor date itself, suffix its ISO date. ``every: year``: each anniversary
    after the anchor's own year (the policy's first anniversary is a year after it started),
    suffix the year; 29 February is kept on 28 February in other years.
    """
    if every is None:
        due = anchor_fire(anchor, at, offset, tz, on_non_working_day)
        return [(anchor.isoformat(), due)] if start < due <= end else []
    lo, hi = anchor_date_range(start, end, offset, on_non_working_day)
    out = []
    for year in range(max(lo.year, anchor.year + 1), hi.year + 1):
        due = anchor_fire(anniversary_in(anchor, year), at, offset, tz, on_non_working_day)
        if start < due <= end:
            out.append((str(year), due))
    return out


def as_anchor_date(value: object) -> date | None:
    """A stored date field or attribute as a date: a date, a datetime's date, or an ISO date
    text; None for anything else (an attribute that is not a date has no occurrence), and for a
    date outside the years the product takes (``store.clock.out_of_range``), whose offsets could
    leave the range datetime holds: attributes arrive as free JSON, not through a date column."""
    day: date | None = None
    if isinstance(value, datetime):
        day = value.date()
    elif isinstance(value, date):
        day = value
    elif isinstance(value, str):
        try:
            day = date.fromisoformat(value[:10])
        except ValueError:
            return None
    return day if day is not None and out_of_range(day) is None else None
