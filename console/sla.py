"""The desk's SLA passes: due and warning times of tasks written without them, and warnings before a breach.

The clock itself (a queue's ``wall`` or ``business`` time, the PRC working-day calendar) is in
``engine.language.sla_clock``; its names are re-exported here for the console. The planner
writes each task's due time and warning time on its queue's clock when it plans it, so the desk
round keeps only what needs the clock of now:

- ``settle_new_tasks`` gives a task still without a warning time (``warn_at`` empty: written
  before the planner set both, or by hand) its due time by its queue's clock, counted from its
  start (the journey step's ``due_within`` tells where it was), and its warning time; for tasks
  the planner wrote it finds nothing to do;
- ``warn_at_risk`` tells the assignee and the supervisor once per task, when its warning time
  has passed (the inbox and the supervisor desk show the task as at risk; a
  ``task.sla_warning`` event goes to whatever listens); escalation stays where it was, at the
  breach (``console.assignment.escalate_overdue``, which settles first).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import col, select

from console.desk_batches import in_batches
from console.events_bridge import emit_many
from engine.language.durations import parse_duration
from engine.language.paths import journeys_dir
from engine.language.sla_clock import Clock, TaskClocks, clock_for, current_clocks, sla_times
from engine.language.yaml_lines import YamlError, load_located
from engine.loop.events import Incoming
from store.clock import as_utc, utcnow
from store.db import session_scope
from store.models import AgentTask, Customer, JourneyVersion, TaskStatus

__all__ = ["Clock", "TaskClocks", "clock_for", "follow_up_times", "settle_new_tasks", "sla_times", "step_window",
           "warn_at_risk"]

log = logging.getLogger(__name__)

ACTIVE = (TaskStatus.OPEN, TaskStatus.CLAIMED)
BATCH = 500


# --- where a planner-written task's SLA started -----------------------------------------------------

_windows: dict[tuple[str, str, str], timedelta | None] = {}
_windows_lock = threading.Lock()


def _due_within(source: str, step_id: str) -> timedelta | None:
    try:
        data: Any = load_located(source).data  # bounded: a stored version may predate the guards
        steps = data.get("steps") if isinstance(data, dict) else None
        for step in steps or []:
            if isinstance(step, dict) and step.get("id") == step_id and isinstance(step.get("task"), dict):
                return parse_duration(str(step["task"]["due_within"]))
    except (YamlError, ValueError, KeyError):
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
    clocks = current_clocks()

    def batch() -> tuple[int, int]:
        with session_scope(db_url) as session:
            rows = session.exec(
                select(AgentTask).where(col(AgentTask.status).in_(ACTIVE), col(AgentTask.warn_at).is_(None))
                .order_by(col(AgentTask.id)).limit(BATCH)
            ).all()
            settled: list[dict[str, Any]] = []
            for task in rows:
                due = as_utc(task.due_at)
                window = step_window(session, task.journey_id, task.journey_version, task.step_id)
                start = due - window if window is not None else as_utc(task.created_at)
                if window is None:
                    window = max(timedelta(0), due - start)
                new_due, warn = clocks.times(task.queue, start, window)
                if task.escalated:
                    new_due = due  # already escalated on its old time: the record stays as it was
                settled.append({"tid": task.id, "new_due": new_due, "new_warn": min(warn, new_due)})
            if settled:
                # One statement for the batch; the guard leaves a task another round settled meanwhile.
                table = AgentTask.__table__  # type: ignore[attr-defined]
                session.connection().execute(
                    update(table).where(table.c.id == bindparam("tid"), table.c.warn_at.is_(None))
                    .values(due_at=bindparam("new_due"), warn_at=bindparam("new_warn")), settled)
            return len(rows), len(rows)

    return in_batches(batch, BATCH, log, "set the SLA of %d new task(s)")


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
    return current_clocks().times(queue_name, start, window)
