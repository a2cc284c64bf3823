"""What the ops journeys pages show: each journey's state and recent volume, and one journey's live counts per step.

Everything comes from the registry's cached validation (``validated_report``: nothing is
re-validated per request) and from grouped SQL, one query per family of figures whatever the
number of journeys or steps, so the list costs the same with five journeys as with fifty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from engine.language.journey_model import Condition, DateEntry, Journey
from engine.language.journey_registry import validated_report
from engine.language.journey_review import APPROVED, PENDING, effective_review_config, in_force_of, stored_journey
from engine.language.journey_review import REJECTED as REVIEW_REJECTED_STATE
from engine.language.validation import LoadedJourney, Report
from engine.loop.metric_sql import whole
from engine.loop.service_metrics import GOAL_EXIT_REASONS, counts_as_planned, counts_as_task
from engine.loop.sqlfn import count_where
from engine.loop.tables import enrollment_t, outcome_t, task_t, touch_t
from engine.planning.journeys_in_force import switched_on
from store.clock import utcnow
from store.models import IN_JOURNEY_SQL, WEBHOOK_CHANNEL, JourneyVersion

version_t: sa.Table = JourneyVersion.__table__  # type: ignore[attr-defined]
RECENT = timedelta(days=7)
MAX_REASONS = 6
# Journey states, as the page names them.
ON, OFF, SWITCHED_ON, SWITCHED_OFF, REJECTED_KEPT, REJECTED = (
    "on", "off", "switched_on", "switched_off", "rejected_kept", "rejected")
# The file's version waits for review, or review rejected it; ``in_force_version`` says what runs meanwhile.
PENDING_REVIEW, REVIEW_REJECTED = "pending_review", "review_rejected"


@dataclass(frozen=True)
class EntryInfo:
    kind: str  # schedule | date | event
    detail: str  # the cron line, the anchor and offset, or the event type and its condition
    date: DateEntry | None = None  # a date entry, for the page to put in words
    event: str | None = None  # an event entry's type and its condition, for the page to put in words
    when: Condition | None = None


@dataclass
class JourneyRow:
    id: str
    name: str
    category: str
    state: str
    entry: EntryInfo | None
    tiers: list[str]
    audience_when: str | None
    audience_condition: Condition | None
    priority: int | None
    path: str
    version: str | None
    touches_7d: int = 0
    tasks_7d: int = 0
    last_change: datetime | None = None
    # The version in force when it is not the file's (review pending or rejected, a rollback); else None.
    in_force_version: str | None = None


def entry_info(journey: Journey) -> EntryInfo:
    entry = journey.entry
    if entry.schedule is not None:
        return EntryInfo("schedule", entry.schedule.cron)
    if entry.date is not None:
        holidays = f" ({', '.join(entry.date.holidays)})" if entry.date.holidays else ""
        return EntryInfo("date", f"{entry.date.anchor}{holidays} {entry.date.offset} {entry.date.at}", entry.date)
    assert entry.event is not None
    when = f" · {entry.event.when.describe()}" if entry.event.when is not None else ""
    return EntryInfo("event", f"{entry.event.type}{when}", event=entry.event.type, when=entry.event.when)


def _row(loaded: LoadedJourney, state: str) -> JourneyRow:
    j = loaded.journey
    return JourneyRow(
        id=j.id, name=j.name, category=j.category, state=state, entry=entry_info(j), tiers=list(j.audience.tiers or []),
        audience_when=j.audience.when.describe() if j.audience.when is not None else None,
        audience_condition=j.audience.when, priority=j.priority,
        path=loaded.path, version=loaded.version,
    )


def _state(loaded: LoadedJourney, switches: dict[str, bool]) -> str:
    switch = switches.get(loaded.id)
    if switch is None or switch == loaded.journey.enabled:
        return ON if loaded.journey.enabled else OFF
    return SWITCHED_ON if switch else SWITCHED_OFF


def _versions(session: Session) -> list[Any]:
    v = version_t
    return list(session.execute(
        sa.select(v.c.id, v.c.path, v.c.journey_id, v.c.version, v.c.review_state, v.c.published_at, v.c.in_force_at)
        .order_by(v.c.published_at, v.c.id)
    ).all())


def _in_force_by_path(session: Session, rows: list[Any], paths: list[str]) -> dict[str, Any]:
    """The version in force stored from each of these files (what the planner keeps while a file is broken)."""
    if not paths:
        return {}
    current = {r.path: r.id for r in in_force_of(rows).values()}
    wanted = {p: _suffixes(p) for p in paths}
    ids = {shown: row_id for path, row_id in current.items() for shown, ends in wanted.items() if path in ends}
    v = version_t
    found = {r.id: r for r in session.execute(
        sa.select(v.c.id, v.c.path, v.c.version, v.c.source).where(v.c.id.in_(list(ids.values())))).all()}
    return {shown: found[row_id] for shown, row_id in ids.items() if row_id in found}


def _suffixes(path: str) -> set[str]:
    parts = path.replace("\\", "/").split("/")
    return {"/".join(parts[i:]) for i in range(len(parts))}


def _review(rows: list[JourneyRow], stored: list[Any]) -> None:
    """Mark the valid files whose version is not the one in force (pending or rejected review, a rollback)."""
    states = {(r.journey_id, r.version): r.review_state for r in stored}
    in_force = in_force_of(stored)
    config = effective_review_config()
    for row in rows:
        state = states.get((row.id, row.version))
        if state is None:  # not landed yet: the planner will store it so on its next run
            state = PENDING if stored and config.required(row.category) else APPROVED
        current = in_force.get(row.id)
        if state == PENDING:
            row.state = PENDING_REVIEW
        elif state == REVIEW_REJECTED_STATE:
            row.state = REVIEW_REJECTED
        if current is not None and current.version != row.version:
            row.in_force_version = current.version


def journey_rows(session: Session, report: Report | None = None, *, now: datetime | None = None) -> list[JourneyRow]:
    """Every journey file: valid ones with their state, rejected ones with the version kept in force (if any)."""
    report = report if report is not None else validated_report()
    now = now or utcnow()
    switches = switched_on(session)
    rows = [_row(lj, _state(lj, switches)) for lj in report.journeys]
    stored = _versions(session)
    _review(rows, stored)
    valid_ids = {r.id for r in rows}
    kept = _in_force_by_path(session, stored, list(report.rejected_files))
    for path in report.rejected_files:
        previous = stored_journey(kept[path]) if path in kept else None
        if previous is None or previous.id in valid_ids:
            rows.append(JourneyRow(id="", name="", category="", state=REJECTED, entry=None, tiers=[],
                                   audience_when=None, audience_condition=None, priority=None, path=path, version=None))
            continue
        row = _row(previous, REJECTED_KEPT)
        row.path = path
        rows.append(row)
    _add_volumes(session, rows, now)
    return sorted(rows, key=lambda r: (r.state in (REJECTED, REJECTED_KEPT), r.id or r.path))


def _add_volumes(session: Session, rows: list[JourneyRow], now: datetime) -> None:
    since = now - RECENT
    # By the journeys listed, so that each is a range of the journey-and-time indexes (migration 0015)
    # rather than a read of every touch and task ever written.
    ids = sorted({row.id for row in rows if row.id})
    touches = dict(session.execute(
        sa.select(touch_t.c.journey_id, count_where(counts_as_planned(touch_t.c.status)))
        # A webhook step's call goes to another system, not the customer: the report counts no such touch as
        # planned (engine.loop.service_metrics), and the week's touches are the report's. A journey's own page
        # still shows its webhook steps' calls, step by step.
        .where(touch_t.c.journey_id.in_(ids), touch_t.c.planned_for >= since, touch_t.c.planned_for < now,
               touch_t.c.channel != WEBHOOK_CHANNEL)
        .group_by(touch_t.c.journey_id)
    ).all())
    tasks = dict(session.execute(
        sa.select(task_t.c.journey_id, count_where(counts_as_task(task_t.c.status)))
        .where(task_t.c.journey_id.in_(ids), task_t.c.created_at >= since, task_t.c.created_at < now)
        .group_by(task_t.c.journey_id)
    ).all())
    v = version_t
    changed = {(j, ver): at for j, ver, at in session.execute(
        sa.select(v.c.journey_id, v.c.version, sa.func.min(v.c.published_at)).group_by(v.c.journey_id, v.c.version)
    ).all()}
    for row in rows:
        row.touches_7d = whole(touches.get(row.id))
        row.tasks_7d = whole(tasks.get(row.id))
        row.last_change = changed.get((row.id, row.version))


def find_journey(session: Session, journey_id: str, report: Report | None = None) -> tuple[LoadedJourney, str] | None:
    """The journey file with this id and its state (pending or rejected review included), or None."""
    report = report if report is not None else validated_report()
    for lj in report.journeys:
        if lj.id == journey_id:
            row = _row(lj, _state(lj, switched_on(session)))
            _review([row], _versions(session))
            return lj, row.state
    kept = _in_force_by_path(session, _versions(session), list(report.rejected_files))
    for row in kept.values():
        previous = stored_journey(row)
        if previous is not None and previous.id == journey_id:
            return previous, REJECTED_KEPT
    return None


@dataclass
class StepCounts:
    entered: int | None = None
    waiting: int = 0
    planned: int = 0
    sent: int = 0
    delivered: int = 0
    replied: int = 0
    failed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # stored reason ("" none) → touches not sent
    dropped_other: int = 0  # touches not sent for reasons past the first MAX_REASONS
    tasks_opened: int = 0
    tasks_closed: int = 0
    goal: int = 0
    exits: dict[str, int] = field(default_factory=dict)


@dataclass
class JourneyCounts:
    entered: int
    steps: dict[str, StepCounts]


def step_counts(session: Session, loaded: LoadedJourney, start: datetime, end: datetime) -> JourneyCounts:
    """Live counts per step for ``[start, end)``: touches planned in the period and what became of them,
    tasks opened and closed in it, enrollments waiting now, exits (goal among them) in it."""
    jid = loaded.id
    steps = {s.id: StepCounts() for s in loaded.journey.steps}

    def at(step_id: str | None) -> StepCounts:
        return steps.setdefault(step_id or "—", StepCounts())

    t = touch_t
    in_period = (t.c.journey_id == jid) & (t.c.planned_for >= start) & (t.c.planned_for < end)
    for step_id, planned, sent, delivered, failed in session.execute(
        sa.select(t.c.step_id, count_where(counts_as_planned(t.c.status)), count_where(t.c.sent_at.is_not(None)),
                  count_where(t.c.status == "delivered"), count_where(t.c.status == "failed"))
        .where(in_period).group_by(t.c.step_id)
    ).all():
        c = at(step_id)
        c.planned, c.sent, c.delivered, c.failed = whole(planned), whole(sent), whole(delivered), whole(failed)
    # Not sent, by why: a delivery rule dropped it (caps, pre-emption, no channel) or it was cancelled
    # (opt-out, consent, anonymisation); a step shows its most common reasons and the rest summed.
    for step_id, reason, n in session.execute(
        sa.select(t.c.step_id, t.c.error_reason, sa.func.count())
        .where(in_period, t.c.status.in_(("cancelled", "dropped"))).group_by(t.c.step_id, t.c.error_reason)
        .order_by(sa.func.count().desc(), t.c.error_reason)
    ).all():
        dropped = at(step_id).dropped
        key = reason or ""
        if len(dropped) < MAX_REASONS or key in dropped:
            dropped[key] = dropped.get(key, 0) + whole(n)
        else:
            at(step_id).dropped_other += whole(n)
    o = outcome_t
    for step_id, n in session.execute(
        sa.select(t.c.step_id, sa.func.count(sa.distinct(t.c.id)))
        .select_from(t.join(o, o.c.touch_id == t.c.id)).where(in_period, o.c.kind == "replied").group_by(t.c.step_id)
    ).all():
        at(step_id).replied = whole(n)
    k = task_t
    # Opened as the report counts its tasks (a cancelled one was never there to work). Opened and closed
    # apart, each a time range of an index (migration 0015, ix_task_completed): one
    # statement with either range read every task the journey ever had.
    for step_id, n in session.execute(
        sa.select(k.c.step_id, count_where(counts_as_task(k.c.status)))
        .where(k.c.journey_id == jid, k.c.created_at >= start, k.c.created_at < end).group_by(k.c.step_id)
    ).all():
        at(step_id).tasks_opened = whole(n)
    for step_id, n in session.execute(
        sa.select(k.c.step_id, sa.func.count())
        .where(k.c.journey_id == jid, k.c.completed_at >= start, k.c.completed_at < end).group_by(k.c.step_id)
    ).all():
        at(step_id).tasks_closed = whole(n)
    e = enrollment_t
    for step_id, n in session.execute(
        sa.select(e.c.step_id, sa.func.count())
        .where(e.c.journey_id == jid, sa.text(IN_JOURNEY_SQL)).group_by(e.c.step_id)
    ).all():
        at(step_id).waiting = whole(n)
    for step_id, reason, n in session.execute(
        sa.select(e.c.step_id, e.c.exit_reason, sa.func.count())
        .where(e.c.journey_id == jid, e.c.exited_at >= start, e.c.exited_at < end)
        .group_by(e.c.step_id, e.c.exit_reason)
    ).all():
        c = at(step_id)
        c.exits[reason or "completed"] = whole(n)
        if reason in GOAL_EXIT_REASONS:
            c.goal += whole(n)
    entered = whole(session.execute(
        # The index's own condition, stated: SQLite does not read it into a range on a NOT NULL column (0016).
        sa.select(sa.func.count()).where(e.c.journey_id == jid, e.c.entered_at.is_not(None), e.c.entered_at >= start,
                                         e.c.entered_at < end)
    ).scalar())
    for step in loaded.journey.steps:
        c = steps[step.id]
        c.entered = c.planned if step.send else c.tasks_opened if step.task else None
    steps[loaded.journey.steps[0].id].entered = entered
    return JourneyCounts(entered, steps)
