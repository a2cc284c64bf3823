"""Closing the loop: every outcome traces back to touch/task → step → journey version → entry rule.

The chain is stored on the rows themselves: an outcome names its touch or task; a touch or
task names its journey, journey version, step, occurrence and enrollment (and a touch keeps
the entry rule and split branch it was planned under); the enrollment keeps the entry rule
that admitted the customer; an event-entry enrollment's occurrence is the trigger event's
external id. ``trace_*`` follow it with one join query each; ``journeys trace`` prints it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from engine.loop.tables import customer_t, enrollment_t, event_t, outcome_t, task_t, touch_t, version_t


@dataclass
class Trace:
    kind: str  # touch | task
    customer_external_id: str
    journey_id: str
    journey_version: str
    journey_path: str | None
    step_id: str
    occurrence: str
    entry_rule: str | None
    split_branch: str | None
    enrollment_id: int | None
    touch_id: int | None = None
    task_id: int | None = None
    channel: str | None = None
    template: str | None = None
    status: str | None = None
    trigger_event_type: str | None = None
    trigger_event_id: str | None = None
    trigger_at: datetime | None = None
    outcome_id: int | None = None
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.trigger_at is not None:
            data["trigger_at"] = self.trigger_at.isoformat()
        return data


def _outcomes(session: Session, column: sa.Column[Any], row_id: int) -> list[dict[str, Any]]:
    rows = session.connection().execute(
        sa.select(outcome_t.c.id, outcome_t.c.kind, outcome_t.c.occurred_at)
        .where(column == row_id)
        .order_by(outcome_t.c.occurred_at, outcome_t.c.id)
    ).all()
    return [{"id": r.id, "kind": r.kind, "occurred_at": r.occurred_at.isoformat()} for r in rows]


def _trace(session: Session, source: sa.Table, row_id: int) -> Trace | None:
    is_touch = source is touch_t
    e, ev, v, c = enrollment_t, event_t, version_t, customer_t
    columns: list[Any] = [
        c.c.external_id.label("customer"), source.c.journey_id, source.c.journey_version, source.c.step_id,
        source.c.occurrence, source.c.enrollment_id, source.c.status, v.c.path,
        ev.c.type.label("event_type"), ev.c.external_id.label("event_id"), ev.c.occurred_at.label("event_at"),
        e.c.entry_rule.label("enrollment_rule"), e.c.split_branch.label("enrollment_branch"),
    ]
    if is_touch:
        columns += [source.c.entry_rule, source.c.split_branch, source.c.channel, source.c.template]
    joins = (
        source.join(c, c.c.id == source.c.customer_id)
        .outerjoin(e, e.c.id == source.c.enrollment_id)
        .outerjoin(ev, ev.c.external_id == source.c.occurrence)
        .outerjoin(v, (v.c.journey_id == source.c.journey_id) & (v.c.version == source.c.journey_version))
    )
    row = session.connection().execute(sa.select(*columns).select_from(joins).where(source.c.id == row_id)).first()
    if row is None:
        return None
    m = row._mapping
    return Trace(
        kind="touch" if is_touch else "task",
        customer_external_id=m["customer"], journey_id=m["journey_id"], journey_version=m["journey_version"],
        journey_path=m["path"], step_id=m["step_id"], occurrence=m["occurrence"],
        entry_rule=(m["entry_rule"] if is_touch else None) or m["enrollment_rule"],
        split_branch=(m["split_branch"] if is_touch else None) or m["enrollment_branch"],
        enrollment_id=m["enrollment_id"], touch_id=row_id if is_touch else None,
        task_id=None if is_touch else row_id, channel=m["channel"] if is_touch else "agent",
        template=m["template"] if is_touch else None, status=m["status"],
        trigger_event_type=m["event_type"], trigger_event_id=m["event_id"], trigger_at=m["event_at"],
        outcomes=_outcomes(session, outcome_t.c.touch_id if is_touch else outcome_t.c.task_id, row_id),
    )


def trace_touch(session: Session, touch_id: int) -> Trace | None:
    return _trace(session, touch_t, touch_id)


def trace_task(session: Session, task_id: int) -> Trace | None:
    return _trace(session, task_t, task_id)


def trace_outcome(session: Session, outcome_id: int) -> Trace | None:
    """The journey, step, version and rule behind one outcome (None if it names neither touch nor task)."""
    row = session.connection().execute(
        sa.select(outcome_t.c.touch_id, outcome_t.c.task_id).where(outcome_t.c.id == outcome_id)
    ).first()
    if row is None:
        return None
    if row.touch_id is not None:
        trace = trace_touch(session, row.touch_id)
    elif row.task_id is not None:
        trace = trace_task(session, row.task_id)
    else:
        return None
    if trace is not None:
        trace.outcome_id = outcome_id
    return trace
