"""A call's start and end: claiming a task, recording its outcome, and the follow-ups an outcome opens.

Claim and completion are single conditional UPDATEs, so of two agents acting at once exactly
one wins on SQLite and PostgreSQL alike; the journey hears of an outcome only once it is
committed (``console.events_bridge``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, update
from sqlmodel import col

from console import queues, sla
from console.auth import CurrentUser, audit
from console.events_bridge import emit
from console.task_inbox import next_task_id
from console.task_rights import (
    ACTIVE,
    TaskConflict,
    TaskForbidden,
    TaskInvalid,
    claimable,
    load_visible,
)
from engine.language.settings_model import OUTCOME_CODES
from store.clock import as_utc, utcnow
from store.db import session_scope
from store.masking import mask_text
from store.models import AgentTask, Customer, Outcome, TaskStatus

# Every outcome code; each queue offers some of them (config/queues.yaml, console.queues).
OUTCOMES: tuple[str, ...] = OUTCOME_CODES
MAX_ATTEMPTS = 3
RETRY_AFTER = timedelta(hours=4)
MAX_CALLBACK_AHEAD = timedelta(days=90)



@dataclass(frozen=True)
class Completion:
    task_id: int
    outcome: str
    follow_up_task_id: int | None
    next_task_id: int | None


def claim(user: CurrentUser, task_id: int, *, now: datetime | None = None, db_url: str | None = None) -> None:
    now = now or utcnow()
    with session_scope(db_url) as session:
        task = load_visible(user, session, task_id)
        if task.status != TaskStatus.OPEN:
            raise TaskConflict("not_open")
        allowed = task.assignee_id == user.id or claimable(user, session, task)
        if not allowed:
            raise TaskForbidden("forbidden")
        result = session.connection().execute(
            update(AgentTask)
            .where(col(AgentTask.id) == task_id, col(AgentTask.status) == TaskStatus.OPEN,
                   or_(col(AgentTask.assignee_id).is_(None), col(AgentTask.assignee_id) == user.id))
            .values(status=TaskStatus.CLAIMED, assignee_id=user.id, claimed_at=now)
        )
        if result.rowcount != 1:
            raise TaskConflict("already_claimed")
        audit(session, user.username, "claim", "task", task_id, at=now)


def _is_complaint_task(task: AgentTask) -> bool:
    return "complaint" in task.queue or "complaint" in task.journey_id


def complete(
    user: CurrentUser,
    task_id: int,
    outcome: str,
    *,
    notes: str | None = None,
    callback_at: datetime | None = None,
    now: datetime | None = None,
    require_claim: bool = False,
    db_url: str | None = None,
) -> Completion:
    """Record the outcome of a task and feed it back into the journey.

    The outcome must be one the task's queue offers (``outcome_not_offered`` otherwise). With
    ``require_claim`` (the desk's pages and the API, which people and phone systems use) the task
    must be claimed by the user first (``claim_first``): the claim marks the start of the call, and
    the SLA figures read it. Without it (the demo's simulated agents, tests) completing an open task
    the user may take claims it in the same step.
    """
    now = now or utcnow()
    if outcome not in OUTCOMES:
        raise TaskInvalid("unknown_outcome", f"outcome must be one of {', '.join(OUTCOMES)}")
    if outcome == "call_back":
        if callback_at is None:
            raise TaskInvalid("callback_time_required")
        callback_at = as_utc(callback_at)
        if callback_at <= now or callback_at > now + MAX_CALLBACK_AHEAD:
            raise TaskInvalid("callback_time_range")
    notes = (notes or "").strip()[:4000] or None
    follow_up_id: int | None = None
    emits: list[tuple[str, str, dict[str, Any], str]] = []
    with session_scope(db_url) as session:
        task = load_visible(user, session, task_id)
        if task.status not in ACTIVE:
            raise TaskConflict("not_active")
        if not (task.assignee_id == user.id or claimable(user, session, task)):
            raise TaskForbidden("forbidden")
        if require_claim and not (task.assignee_id == user.id and task.status == TaskStatus.CLAIMED):
            raise TaskConflict("claim_first")
        if outcome not in queues.outcomes_of(task.queue):
            raise TaskInvalid("outcome_not_offered", f"queue {task.queue} does not offer the outcome {outcome}")
        result = session.connection().execute(
            update(AgentTask)
            .where(col(AgentTask.id) == task_id, col(AgentTask.status).in_(ACTIVE),
                   or_(col(AgentTask.assignee_id) == user.id,
                       (col(AgentTask.assignee_id).is_(None)) & (col(AgentTask.status) == TaskStatus.OPEN)))
            .values(status=TaskStatus.DONE, assignee_id=user.id, completed_at=now, outcome_code=outcome,
                    notes=notes, claimed_at=func.coalesce(AgentTask.claimed_at, now))
        )
        if result.rowcount != 1:
            raise TaskConflict("already_taken")
        session.refresh(task)
        customer = session.get(Customer, task.customer_id)
        assert customer is not None and task.id is not None

        follow_up: AgentTask | None = None
        if outcome == "no_answer" and task.attempt < MAX_ATTEMPTS:
            # Four hours on the queue's clock: a retry after a 17:00 no-answer is due the next morning.
            due, warn = sla.follow_up_times(task.queue, now, RETRY_AFTER)
            follow_up = _follow_up(task, f"retry:{task.id}", due, warn, task.attempt + 1, now)
        elif outcome == "call_back" and callback_at is not None:
            # The customer was reached and asked for a later call: a fresh conversation, attempts start
            # again, due at the time the customer chose (on the wall clock, whatever the queue's).
            share = queues.current().queue(task.queue).warn_at
            follow_up = _follow_up(task, f"callback:{task.id}", callback_at, now + (callback_at - now) * share, 1, now)
        if follow_up is not None:
            session.add(follow_up)
            session.flush()
            follow_up_id = follow_up.id

        if outcome in ("renewal_yes", "renewal_no"):
            # Journeys read it as customer.attributes.renewal_intent (e.g. to stop reminding).
            customer.attributes = {**customer.attributes, "renewal_intent": outcome == "renewal_yes",
                                   "renewal_intent_at": now.isoformat()}
            customer.updated_at = now
            session.add(customer)

        created_at = as_utc(task.created_at)
        claimed_at = as_utc(task.claimed_at) if task.claimed_at else now
        session.add(Outcome(
            dedup_key=f"task:{task.id}", task_id=task.id, customer_id=customer.id, channel="task",
            kind=f"task:{outcome}", occurred_at=now,
            detail={
                "journey_id": task.journey_id, "step_id": task.step_id, "queue": task.queue,
                "attempt": task.attempt, "agent": user.username,
                "created_at": created_at.isoformat(), "claimed_at": claimed_at.isoformat(),
                "completed_at": now.isoformat(), "cycle_seconds": int((now - created_at).total_seconds()),
                "due_at": as_utc(task.due_at).isoformat(), "within_sla": now <= as_utc(task.due_at),
                "follow_up_task_id": follow_up_id,
                "attempts_exhausted": outcome == "no_answer" and task.attempt >= MAX_ATTEMPTS,
                "callback_at": callback_at.isoformat() if callback_at else None,
            },
        ))
        audit(session, user.username, "complete", "task", task.id, {"outcome": outcome}, at=now)

        # journey and occurrence: the enrollment whose wait_for this outcome answers (engine.planning).
        answered = {"journey": task.journey_id, "step": task.step_id, "occurrence": task.occurrence}
        emits.append(("task.completed", customer.external_id,
                      {"task_id": task.id, "outcome": outcome, "queue": task.queue,
                       **{k: v for k, v in answered.items() if v}}, f"task.completed:{task.id}"))
        if outcome == "complaint_raised":
            emits.append(("complaint.filed", customer.external_id,
                          {"category": "agent_callback", "severity": "normal", "source": "agent_task",
                           "text": mask_text(notes or "")[:500]},
                          f"complaint.filed:task:{task.id}"))
        if outcome == "resolved" and _is_complaint_task(task):
            emits.append(("complaint.resolved", customer.external_id, {"task_id": task.id},
                          f"complaint.resolved:task:{task.id}"))
    for type_, external_id, data, event_id in emits:
        emit(type_, external_id, data, event_id=event_id, occurred_at=now, db_url=db_url)
    return Completion(task_id, outcome, follow_up_id, next_task_id(user, db_url=db_url))


def _follow_up(task: AgentTask, key: str, due_at: datetime, warn_at: datetime, attempt: int,
               now: datetime) -> AgentTask:
    return AgentTask(
        key=key, customer_id=task.customer_id, enrollment_id=task.enrollment_id, journey_id=task.journey_id,
        journey_version=task.journey_version, step_id=task.step_id, occurrence=task.occurrence, queue=task.queue,
        priority=task.priority, script=task.script, assignee_id=task.assignee_id, status=TaskStatus.OPEN,
        due_at=due_at, warn_at=warn_at, created_at=now, attempt=attempt, parent_task_id=task.id,
        event_id=task.event_id,
    )
