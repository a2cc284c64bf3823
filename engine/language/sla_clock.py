"""SLA clocks: a task's due time by its queue's clock, and its warning time.

A queue's clock (``config/queues.yaml``, ``engine.language.queue_config``) is ``wall`` (around
the clock: complaints keep their 24 hours) or ``business``: the service centre's hours
(``business_hours``, in the centre's time zone) on working days of the PRC calendar, official
holidays and make-up working days included (``engine.language.work_calendar``). On a business clock:

- the clock starts at the first open moment at or after the task's start (a negative survey
  answered at 22:00 starts its six hours at 09:00 the next working day, not at once);
- the whole days of the SLA (a week is seven) count working days: ``7d`` from Tuesday 15:00 is
  the seventh working day after it at 15:00; ``1d`` from Friday 15:00 is Monday 15:00 (or later,
  over a holiday);
- hours and minutes count open time: ``2h`` from 17:30 is 10:30 the next working day.

The warning time is ``warn_at`` of the SLA time (default 80%) after the start, on the same clock.
The planner gives each task both when it plans it (``TaskClocks``, built once per run), so a dry
run, explain and simulate show the time the desk will hold the agent to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.language import queue_config
from engine.language.queue_config import Desk, Queue
from engine.language.settings_model import BusinessHours
from engine.language.work_calendar import WorkCalendar
from engine.language.work_calendar import current as current_calendar

_MAX_DAYS = 800  # no SLA runs this long; a search past it means the calendar is wrong


@dataclass(frozen=True)
class Clock:
    """Open time: the service centre's hours on the working days of ``calendar``."""

    hours: BusinessHours
    calendar: WorkCalendar
    # Working days looked up once per clock: the calendar's own lookup is slow (chinese-calendar
    # checks its range on every call) and the planner asks about the same few days for every task.
    _working: dict[date, bool] = field(default_factory=dict, compare=False, repr=False)

    def is_working_day(self, day: date) -> bool:
        known = self._working.get(day)
        if known is None:
            known = self._working[day] = self.calendar.is_working_day(day)
        return known

    def next_working_day(self, day: date) -> date:
        for _ in range(_MAX_DAYS):
            day += timedelta(days=1)
            if self.is_working_day(day):
                return day
        raise ValueError(f"no working day within {_MAX_DAYS} days after {day}")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.hours.timezone)

    def _opens(self) -> time:
        return time.fromisoformat(self.hours.start)

    def _closes(self) -> time:
        return time.fromisoformat(self.hours.end)

    def _at(self, day: date, moment: time) -> datetime:
        return datetime.combine(day, moment, tzinfo=self.zone)

    def is_open(self, when: datetime) -> bool:
        local = when.astimezone(self.zone)
        return self.is_working_day(local.date()) and self._opens() <= local.time() < self._closes()

    def next_open(self, when: datetime) -> datetime:
        """``when`` if the centre is open then, else the moment it next opens."""
        local = when.astimezone(self.zone)
        day = local.date()
        if self.is_working_day(day):
            if local.time() < self._opens():
                return self._at(day, self._opens())
            if local.time() < self._closes():
                return local
        return self._at(self.next_working_day(day), self._opens())

    def add_open_time(self, start: datetime, amount: timedelta) -> datetime:
        """The moment ``amount`` of open time after ``start``."""
        moment = self.next_open(start)
        left = amount
        for _ in range(_MAX_DAYS):
            closes = self._at(moment.astimezone(self.zone).date(), self._closes())
            if left <= closes - moment:
                return (moment + left).astimezone(start.tzinfo)
            left -= closes - moment
            moment = self.next_open(closes)
        raise ValueError(f"{amount} of open time does not fit in {_MAX_DAYS} days")

    def open_time_between(self, start: datetime, end: datetime) -> timedelta:
        total = timedelta(0)
        moment = self.next_open(start)
        for _ in range(_MAX_DAYS):
            if moment >= end:
                return total
            closes = self._at(moment.astimezone(self.zone).date(), self._closes())
            total += min(closes, end) - moment
            moment = self.next_open(closes)
        return total

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The same time of day ``days`` working days after ``start`` (itself moved to an open moment)."""
        local = self.next_open(start).astimezone(self.zone)
        day = local.date()
        for _ in range(days):
            day = self.next_working_day(day)
        return self._at(day, local.time()).astimezone(start.tzinfo)

    def deadline(self, start: datetime, window: timedelta) -> datetime:
        """Due time of an SLA of ``window`` starting at ``start``: whole days as working days, the rest as open time."""
        days = window.days
        rest = window - timedelta(days=days)
        moment = self.add_working_days(start, days) if days else self.next_open(start)
        return self.add_open_time(moment, rest) if rest else moment


def clock_for(desk: Desk) -> Clock:
    return Clock(desk.business_hours, current_calendar())


def sla_times(queue: Queue, start: datetime, window: timedelta, clock: Clock) -> tuple[datetime, datetime]:
    """(due, warn) of an SLA of ``window`` from ``start`` in ``queue``."""
    if queue.clock == "business":
        due = clock.deadline(start, window)
        opened = clock.next_open(start)
        warn = clock.add_open_time(opened, clock.open_time_between(opened, due) * queue.warn_at)
        return due, min(warn, due)
    return start + window, start + window * queue.warn_at


@dataclass(frozen=True)
class TaskClocks:
    """The queue declarations and the business clock in force, read once for a whole run."""

    desk: Desk
    clock: Clock
    # A scheduled entry plans the tasks of a whole book at the same moment: each sum is done once.
    _seen: dict[tuple[str, datetime, timedelta], tuple[datetime, datetime]] = field(
        default_factory=dict, compare=False, repr=False)

    def times(self, queue: str, start: datetime, window: timedelta) -> tuple[datetime, datetime]:
        """(due, warn) of a task of ``queue`` starting at ``start`` with ``window`` to do it."""
        key = (queue, start, window)
        found = self._seen.get(key)
        if found is None:
            due, warn = sla_times(self.desk.queue(queue), start, window, self.clock)
            found = self._seen[key] = (due.astimezone(start.tzinfo), warn.astimezone(start.tzinfo))
        return found


def current_clocks() -> TaskClocks:
    """The clocks of the files in force (``config/queues.yaml``, ``config/work_calendar.yaml``)."""
    desk = queue_config.current()
    return TaskClocks(desk, clock_for(desk))
