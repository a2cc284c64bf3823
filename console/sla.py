"""SLA clocks: a task's due time by its queue's clock, its warning time, and the passes that set them.

A queue's clock (``config/queues.yaml``) is ``wall`` (around the clock: complaints keep their 24
hours) or ``business``: the service centre's hours (``business_hours``) on working days of the
PRC calendar, official holidays and make-up working days included
(``engine.language.work_calendar``). On a business clock:

- the clock starts at the first open moment at or after the task's start (a negative survey
  answered at 22:00 starts its six hours at 09:00 the next working day, not at once);
- the whole days of the SLA (a week is seven) count working days: ``7d`` from Tuesday 15:00 is
  the seventh working day after it at 15:00; ``1d`` from Friday 15:00 is Monday 15:00 (or later,
  over a holiday);
- hours and minutes count open time: ``2h`` from 17:30 is 10:30 the next working day.

The planner writes a task's due time as its start plus the step's ``due_within`` on the wall
clock. ``settle_new_tasks`` gives each task not seen yet (``warn_at`` empty) its due time by its
queue's clock, counted from that start (the journey step's ``due_within`` tells where it was),
and its warning time: ``warn_at`` of the SLA time (default 80%) after the start, on the same
clock. ``warn_at_risk`` then tells the assignee and the supervisor once per task, when that
time has passed (the inbox and the supervisor desk show the task as at risk; a
``task.sla_warning`` event goes to whatever listens); escalation stays where it was, at the
breach (``console.assignment.escalate_overdue``, which settles first).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import bindparam, update
from sqlmodel import col, select

from console import queues
from console.events_bridge import emit_many
from engine.language.durations import parse_duration
from engine.language.paths import journeys_dir
from engine.language.settings_model import BusinessHours
from engine.language.work_calendar import WorkCalendar
from engine.language.work_calendar import current as current_calendar
from engine.loop.events import Incoming
from store.clock import as_utc, utcnow
from store.db import session_scope
from store.models import AgentTask, Customer, JourneyVersion, TaskStatus

log = logging.getLogger(__name__)

ACTIVE = (TaskStatus.OPEN, TaskStatus.CLAIMED)
BATCH = 500
_MAX_DAYS = 800  # no SLA runs this long; a search past it means the calendar is wrong


@dataclass(frozen=True)
class Clock:
    """Open time: the service centre's hours on the working days of ``calendar``."""

    hours: BusinessHours
    calendar: WorkCalendar

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
        return self.calendar.is_working_day(local.date()) and self._opens() <= local.time() < self._closes()

    def next_open(self, when: datetime) -> datetime:
        """``when`` if the centre is open then, else the moment it next opens."""
        local = when.astimezone(self.zone)
        day = local.date()
        if self.calendar.is_working_day(day):
            if local.time() < self._opens():
                return self._at(day, self._opens())
            if local.time() < self._closes():
                return local
        return self._at(self.calendar.next_working_day(day), self._opens())

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
            day = self.calendar.next_working_day(day)
        return self._at(day, local.time()).astimezone(start.tzinfo)

    def deadline(self, start: datetime, window: timedelta) -> datetime:
        """Due time of an SLA of ``window`` starting at ``start``: whole days as working days, the rest as open time."""
        days = window.days
        rest = window - timedelta(days=days)
        moment = self.add_working_days(start, days) if days else self.next_open(start)
        return self.add_open_time(moment, rest) if rest else moment


def clock_for(desk: queues.Desk) -> Clock:
    return Clock(desk.business_hours, current_calendar())


def sla_times(queue: queues.Queue, start: datetime, window: timedelta, clock: Clock) -> tuple[datetime, datetime]:
    """(due, warn) of an SLA of ``window`` from ``start`` in ``queue``."""
    if queue.clock == "business":
        due = clock.deadline(start, window)
        opened = clock.next_open(start)
        warn = clock.add_open_time(opened, clock.open_time_between(opened, due) * queue.warn_at)
        return due, min(warn, due)
    return start + window, start + window * queue.warn_at


# --- where a planner-written task's SLA started -----------------------------------------------------

_windows: dict[tuple[str, str, str], timedelta | None] = {}
_windows_lock = threading.Lock()


def _due_within(source: str, step_id: str) -> timedelta | None:
    try:
        data: Any = yaml.safe_load(source)
        steps = data.get("steps") if isinstance(data, dict) else None
        for step in steps or []:
            if isinstance(step, dict) and step.get("id") == step_id and isinstance(step.get("task"), dict):
                return parse_duration(str(step["task"]["due_within"]))
    except (yaml.YAMLError, ValueError, KeyError):
        return None
    return None


def step_window(session: Any, journey_id: str, version: str, step_id: str) -> timedelta | None:
    """The ``due_within`` of a journey's task step: from the published version, else the journey file."""
    key = (journey_id, version, step_id)
    with _windows_lock:
        if key in _windows:
            return _windows[key]
    source = session.exec(select(JourneyVersion.source).where(
        JourneyVersion.journey_id == journey_id, JourneyVersion.version == version)).first()
    window = _due_within(source, step_id) if source else None
    if window is None:
        for path in sorted(journeys_dir().glob("*.y*ml")):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if f"id: {journey_id}\n" in text:
                window = _due_within(text, step_id)
                break
    with _windows_lock:
        _windows[key] = window
    return window


# --- the passes --------------------------------------------------------------------------------------


def settle_new_tasks(now: datetime | None = None, *, db_url: str | None = None) -> int:
    """Give every active task not seen yet its due time by its queue's clock and its warning time."""
    now = now or utcnow()
    desk = queues.current()
    clock = clock_for(desk)
    total = 0
    while True:
        with session_scope(db_url) as session:
            rows = session.exec(
                select(AgentTask).where(col(AgentTask.status).in_(ACTIVE), col(AgentTask.warn_at).is_(None))
                .order_by(col(AgentTask.id)).limit(BATCH)
            ).all()
            settled: list[dict[str, Any]] = []
            for task in rows:
                queue = desk.queue(task.queue)
                due = as_utc(task.due_at)
                window = step_window(session, task.journey_id, task.journey_version, task.step_id)
                start = due - window if window is not None else as_utc(task.created_at)
                if window is None:
                    window = max(timedelta(0), due - start)
                new_due, warn = sla_times(queue, start, window, clock)
                if task.escalated:
                    new_due = due  # already escalated on its old time: the record stays as it was
                settled.append({"tid": task.id, "new_due": new_due, "new_warn": min(warn, new_due)})
            if settled:
                # One statement for the batch; the guard leaves a task another round settled meanwhile.
                table = AgentTask.__table__  # type: ignore[attr-defined]
                session.connection().execute(
                    update(table).where(table.c.id == bindparam("tid"), table.c.warn_at.is_(None))
                    .values(due_at=bindparam("new_due"), warn_at=bindparam("new_warn")), settled)
            total += len(rows)
        if len(rows) < BATCH:
            break
    if total:
        log.info("set the SLA of %d new task(s)", total)
    return total


def warn_at_risk(now: datetime | None = None, *, db_url: str | None = None) -> int:
    """Warn once about each active task past its warning time and not yet due; returns how many."""
    now = now or utcnow()
    warned: list[tuple[str, int, str, datetime, int | None]] = []
    with session_scope(db_url) as session:
        rows = session.exec(
            select(AgentTask, Customer.external_id)
            .join(Customer, col(Customer.id) == AgentTask.customer_id)
            .where(col(AgentTask.status).in_(ACTIVE), col(AgentTask.warn_at) <= now,
                   col(AgentTask.warned_at).is_(None), col(AgentTask.due_at) > now)
            .order_by(col(AgentTask.due_at)).limit(5 * BATCH)
        ).all()
        # One guarded UPDATE for the lot; the ids it returns are the tasks this round warns about
        # (another round running at once gets the others, none twice).
        won = set(session.connection().execute(
            update(AgentTask).where(col(AgentTask.id).in_([t.id for t, _ in rows]), col(AgentTask.warned_at).is_(None))
            .values(warned_at=now).returning(col(AgentTask.id))
        ).scalars()) if rows else set()
        for task, external_id in rows:
            if task.id is not None and task.id in won:
                warned.append((external_id, task.id, task.queue, as_utc(task.due_at), task.assignee_id))
    emit_many([Incoming("task.sla_warning", external_id,
                        {"task_id": task_id, "queue": queue, "due_at": due.isoformat(), "assignee_id": assignee},
                        f"task.sla_warning:{task_id}", now)
               for external_id, task_id, queue, due, assignee in warned], db_url)
    if warned:
        log.info("warned about %d task(s) close to their SLA", len(warned))
    return len(warned)


def follow_up_times(queue_name: str, start: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """(due, warn) for a task the desk itself opens (a retry, an escalation) in ``queue_name``."""
    desk = queues.current()
    return sla_times(desk.queue(queue_name), start, window, clock_for(desk))
