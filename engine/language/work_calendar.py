"""Working days in mainland China: the official holiday schedule and its make-up working days (调休).

Each year the State Council publishes which days are off and which weekend days are worked in
exchange, so "is this a working day" is data, not arithmetic. A day is decided by the first of:

1. ``config/work_calendar.yaml`` (optional; ops copy each year's notice into it): a day inside one
   of its holiday ranges is off, one of its make-up working days is worked, and any other day of a
   year it lists is worked Monday to Friday. A listed year replaces the package for that year.
2. The ``chinese-calendar`` package, for the years it ships notices for (2004 up to its release's
   year; a newer release adds the next year).
3. For a year nobody has the notice of yet: weekends off, and the statutory days off of the
   national holiday rules in force since 2025 (元旦 1 Jan; 春节 eve and the first three days;
   清明; 劳动节 1-2 May; 端午; 中秋; 国庆 1-3 Oct). No make-up days or in-lieu days: those come
   only with the notice, so add the year to the file when it is published.

The PRC calendar applies whatever the customer's time zone: callers pass the customer's local date.
``is_working_day`` and ``next_working_day`` read the file in force (re-read when it changes); the
planner uses them for a date entry's and an anchored wait's ``on_non_working_day``, the SLA clock
for business time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

import chinese_calendar

from engine.language.festivals import festival_date, spring_festival_eve
from engine.language.paths import config_dir
from engine.language.problems import Problem, display_path, load_config, load_document
from engine.language.settings_model import HolidayRange, WorkCalendarConfig
from engine.language.yaml_lines import LocatedDocument, Path_

Source = Literal["config", "chinese-calendar", "statutory"]

# The years the installed package has notices for.
PACKAGE_YEARS = (min(chinese_calendar.holidays).year, max(chinese_calendar.holidays).year)

# No run of days off is this long; a search past it means the calendar itself is wrong.
_MAX_SEARCH_DAYS = 366


def work_calendar_path() -> Path:
    return config_dir() / "work_calendar.yaml"


@lru_cache(maxsize=256)
def statutory_days_off(year: int) -> frozenset[date]:
    """The days off the national holiday rules (2025 revision) give in ``year``, before any shuffle."""
    days = {date(year, 1, 1), date(year, 5, 1), date(year, 5, 2), date(year, 10, 1), date(year, 10, 2),
            date(year, 10, 3), festival_date("qingming", year), festival_date("dragon_boat", year),
            festival_date("mid_autumn", year)}
    new_year = festival_date("spring_festival", year)
    days.update({spring_festival_eve(year), new_year, new_year + timedelta(days=1), new_year + timedelta(days=2)})
    return frozenset(days)


class WorkCalendar:
    """Working days by the file's years, the package's years and the statutory rule, in that order."""

    def __init__(self, config: WorkCalendarConfig | None = None) -> None:
        config = config or WorkCalendarConfig()
        self.listed_years = frozenset(config.years)
        self._off = frozenset(d for year in config.years.values() for h in year.holidays for d in h.days())
        self._on = frozenset(d for year in config.years.values() for d in year.working_days)

    def source(self, day: date) -> Source:
        """Which of the three decides ``day``."""
        if day in self._off or day in self._on or day.year in self.listed_years:
            return "config"
        if PACKAGE_YEARS[0] <= day.year <= PACKAGE_YEARS[1]:
            return "chinese-calendar"
        return "statutory"

    def is_working_day(self, day: date) -> bool:
        source = self.source(day)
        if source == "config":
            if day in self._on:
                return True
            return day not in self._off and day.weekday() < 5
        if source == "chinese-calendar":
            return bool(chinese_calendar.is_workday(day))
        return day.weekday() < 5 and day not in statutory_days_off(day.year)

    def first_working_day_from(self, day: date) -> date:
        """``day`` itself when it is a working day, else the first working day after it."""
        for i in range(_MAX_SEARCH_DAYS):
            candidate = day + timedelta(days=i)
            if self.is_working_day(candidate):
                return candidate
        raise ValueError(f"no working day in the {_MAX_SEARCH_DAYS} days from {day.isoformat()}")

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        return self.first_working_day_from(day + timedelta(days=1))

    def last_working_day_to(self, day: date) -> date:
        """``day`` itself when it is a working day, else the last working day before it."""
        for i in range(_MAX_SEARCH_DAYS):
            candidate = day - timedelta(days=i)
            if self.is_working_day(candidate):
                return candidate
        raise ValueError(f"no working day in the {_MAX_SEARCH_DAYS} days to {day.isoformat()}")

    def days_off_after(self, day: date) -> int:
        """How many days off come right after ``day`` (0 when the day after is a working day)."""
        for i in range(_MAX_SEARCH_DAYS):
            if self.is_working_day(day + timedelta(days=i + 1)):
                return i
        raise ValueError(f"no working day in the {_MAX_SEARCH_DAYS} days after {day.isoformat()}")

    def days_off_before(self, day: date) -> int:
        """How many days off come right before ``day`` (0 when the day before is a working day)."""
        for i in range(_MAX_SEARCH_DAYS):
            if self.is_working_day(day - timedelta(days=i + 1)):
                return i
        raise ValueError(f"no working day in the {_MAX_SEARCH_DAYS} days before {day.isoformat()}")


# --- the file in force ----------------------------------------------------------------------------


class WorkCalendarError(Exception):
    """``config/work_calendar.yaml`` is invalid; the message lists every problem as path:line:col."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class _Loaded:
    stamp: tuple[int, int] | None  # (mtime_ns, size) of the file, None when there is none
    calendar: WorkCalendar


_loaded: dict[str, _Loaded] = {}


def current() -> WorkCalendar:
    """The calendar of the file in force (``JOURNEYS_CONFIG_DIR`` or ``config/``), re-read when it changes.

    Without the file the package and the statutory rule decide; an invalid file raises
    ``WorkCalendarError`` rather than silently planning on a calendar ops did not write.
    """
    path = work_calendar_path()
    try:
        stat = path.stat()
        stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        stamp = None
    cached = _loaded.get(str(path))
    if cached is not None and cached.stamp == stamp:
        return cached.calendar
    if stamp is None:
        calendar = WorkCalendar()
    else:
        config, problems = load_work_calendar(path)
        if config is None:
            raise WorkCalendarError(problems)
        calendar = WorkCalendar(config)
    _loaded[str(path)] = _Loaded(stamp, calendar)
    return calendar


def is_working_day(day: date) -> bool:
    return current().is_working_day(day)


def next_working_day(day: date) -> date:
    """The first working day strictly after ``day``."""
    return current().next_working_day(day)


def first_working_day_from(day: date) -> date:
    """``day`` itself when it is a working day, else the first working day after it."""
    return current().first_working_day_from(day)


def last_working_day_to(day: date) -> date:
    """``day`` itself when it is a working day, else the last working day before it."""
    return current().last_working_day_to(day)


# --- validation -----------------------------------------------------------------------------------


def load_work_calendar(path: Path | None = None) -> tuple[WorkCalendarConfig | None, list[Problem]]:
    """Read and check the file; a missing file is no problem (it is optional), an invalid one is."""
    path = path or work_calendar_path()
    if not path.is_file():
        return WorkCalendarConfig(), []
    config, problems = load_config(WorkCalendarConfig, path)
    if config is None:
        return None, problems
    _, doc, _ = load_document(path)
    assert doc is not None  # load_config has just read it
    problems = _cross_checks(config, doc, display_path(path))
    return (None, problems) if problems else (config, [])


def _cross_checks(config: WorkCalendarConfig, doc: LocatedDocument, shown: str) -> list[Problem]:
    """What one entry cannot know alone: its year, the other ranges, the make-up days."""
    problems: list[Problem] = []

    def add(path: Path_, message: str) -> None:
        pos = doc.position(path)
        problems.append(Problem(shown, pos.line, pos.column, message))

    written: dict[int, str] = {}  # the year keys as the file spells them, for positions
    for key in doc.data.get("years") or {}:
        try:
            written[int(key)] = key
        except ValueError:
            continue
    ranges: list[tuple[HolidayRange, Path_]] = []
    make_up: dict[date, Path_] = {}
    for year, work_year in sorted(config.years.items()):
        key = written.get(year, str(year))
        if not 2000 <= year <= 2100:
            pos = doc.position(("years", key), prefer_key=True)
            problems.append(Problem(shown, pos.line, pos.column, f"year {year}: the calendar covers 2000 to 2100"))
        # A notice's New Year days off (and the weekend day worked for them) may fall in the December before.
        lo, hi = date(year - 1, 12, 1), date(year, 12, 31)
        where = f"must fall in {year} (or, for New Year, the December before)"
        for i, holiday in enumerate(work_year.holidays):
            path: Path_ = ("years", key, "holidays", i)
            if holiday.first < lo or holiday.last > hi:
                add(path, f"{holiday.name} {holiday.first.isoformat()}..{holiday.last.isoformat()} {where}")
            for other, _ in ranges:
                if holiday.first <= other.last and other.first <= holiday.last:
                    add(path, f"{holiday.name} {holiday.first.isoformat()}..{holiday.last.isoformat()} overlaps "
                              f"{other.name} {other.first.isoformat()}..{other.last.isoformat()}")
            ranges.append((holiday, path))
        for i, day in enumerate(work_year.working_days):
            path = ("years", key, "working_days", i)
            if not lo <= day <= hi:
                add(path, f"make-up working day {day.isoformat()} {where}")
            if day in make_up:
                add(path, f"make-up working day {day.isoformat()} is listed twice")
            make_up.setdefault(day, path)
    for day, path in make_up.items():
        for holiday, _ in ranges:
            if holiday.first <= day <= holiday.last:
                add(path, f"{day.isoformat()} is both a make-up working day and a day off ({holiday.name})")
    return sorted(set(problems))
