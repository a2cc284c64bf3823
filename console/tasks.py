"""The task service: inbox, task context, claim, complete with an outcome, reassign, reveal.

Every function opens its own transaction and emits events only after it committed
(see ``console.events_bridge``). State changes that can race (two agents claiming
the same task) are single conditional UPDATEs, so exactly one of them wins on
SQLite and PostgreSQL alike.

The pieces live by what they do (``task_rights``: who may; ``task_inbox``: the lists;
``task_outcomes``: claim and outcome; ``task_handover``: a supervisor's assignments;
``task_reveal``: unmasking); this module holds the task page and is the one name callers use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from console import queues
from console.auth import CurrentUser
from console.reasons import Reason, masked, reason_of, trigger_of
from console.scripts import render_script
from console.task_handover import MAX_BULK, Assigned, assign_many, reassign, team_members
from console.task_inbox import (
    COUNT_CAP,
    Inbox,
    InboxFilter,
    TaskRow,
    end_of_today,
    inbox,
    list_tasks,
    next_task_id,
    queue_names,
    task_row,
)
from console.task_outcomes import (
    MAX_ATTEMPTS,
    MAX_CALLBACK_AHEAD,
    OUTCOMES,
    RETRY_AFTER,
    Completion,
    claim,
    complete,
)
from console.task_reveal import (
    REVEAL_ACTIONS,
    RevealBurst,
    RevealLimited,
    RevealPolicy,
    reveal,
    reveal_bursts,
    reveal_policy,
)
from console.task_rights import (
    ACTIVE,
    SUPERVISOR_QUEUE,
    TaskConflict,
    TaskError,
    TaskForbidden,
    TaskInvalid,
    TaskNotFound,
    can_reveal,
    can_view,
    claimable,
    load_visible,
    may_hand_on,
    scope_for,
)
from engine.language.settings_model import CLOSING_OUTCOMES
from store.db import session_scope
from store.masking import mask_email, mask_name, mask_phone, mask_text
from store.models import AgentTask, AppUser, Customer, Outcome, Policy, TaskStatus, Touch

__all__ = [
    "ACTIVE", "COUNT_CAP", "MAX_ATTEMPTS", "MAX_BULK", "MAX_CALLBACK_AHEAD", "OUTCOMES", "RETRY_AFTER",
    "REVEAL_ACTIONS", "SUPERVISOR_QUEUE", "Assigned", "Completion", "Inbox", "InboxFilter", "RevealBurst",
    "RevealLimited", "RevealPolicy", "TaskConflict", "TaskDetail", "TaskError", "TaskForbidden", "TaskInvalid",
    "TaskNotFound", "TaskRow", "assign_many", "can_reveal", "can_view", "claim", "complete", "detail",
    "end_of_today", "inbox", "list_tasks", "masked_customer", "next_task_id", "queue_names", "reassign", "reveal",
    "reveal_bursts", "reveal_policy", "scope_for", "task_row", "team_members",
]


@dataclass
class TaskDetail:
    task: AgentTask
    customer: dict[str, Any]
    policies: list[dict[str, Any]]
    touches: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    assignee: str | None
    can_claim: bool
    can_complete: bool
    can_reassign: bool
    can_reveal: bool = False
    script: str | None = None
    offered: tuple[str, ...] = ()  # the outcomes this task's queue offers
    closing: tuple[str, ...] = ()  # those that close the task for good: the desk asks to confirm them
    # Why the script is missing when the task has one that could not be rendered (shown, never hidden).
    script_error: str | None = None
    reason: Reason | None = None
    # The task's own notes as anyone reads them: masked like the customer's details beside them.
    notes: str | None = None


def detail(user: CurrentUser, task_id: int, *, db_url: str | None = None) -> TaskDetail:
    with session_scope(db_url) as session:
        task = load_visible(user, session, task_id)
        customer = session.get(Customer, task.customer_id)
        assert customer is not None
        assignee = session.get(AppUser, task.assignee_id) if task.assignee_id else None
        policies = session.exec(
            select(Policy).where(Policy.customer_id == customer.id).order_by(col(Policy.expiry_date).desc()).limit(10)
        ).all()
        touches = session.exec(
            select(Touch).where(Touch.customer_id == customer.id).order_by(col(Touch.due_at).desc()).limit(10)
        ).all()
        outcomes = session.exec(
            select(Outcome).where(Outcome.customer_id == customer.id)
            .order_by(col(Outcome.occurred_at).desc()).limit(10)
        ).all()
        # A call's notes live on its task: the outcomes of calls show them, so the next caller reads what was
        # agreed (a call back asked for, a retry after no answer).
        task_ids = {o.task_id for o in outcomes if o.task_id is not None}
        notes = dict(session.exec(select(AgentTask.id, AgentTask.notes)
                                  .where(col(AgentTask.id).in_(task_ids))).all()) if task_ids else {}
        shown_customer = masked_customer(customer)
        trigger = trigger_of(session, task)
        script = render_script(session, task, customer, user.display_name, trigger)
        may_claim = claimable(user, session, task)
        mine = task.assignee_id == user.id
        offered = queues.outcomes_of(task.queue)
        return TaskDetail(
            task=task,
            customer=shown_customer,
            policies=[
                {"external_id": p.external_id, "product_line": p.product_line, "annual_premium": p.annual_premium,
                 "start_date": p.start_date, "expiry_date": p.expiry_date, "status": p.status}
                for p in policies
            ],
            touches=[
                {"journey_id": t.journey_id, "channel": t.channel, "template": t.template, "status": t.status,
                 "due_at": t.due_at, "sent_at": t.sent_at, "error": t.error_reason}
                for t in touches
            ],
            outcomes=[
                {"kind": o.kind, "channel": o.channel, "occurred_at": o.occurred_at,
                 "text": _outcome_text(o, notes, customer),
                 "callback_at": _moment(o.detail.get("callback_at")) if o.task_id and o.detail else None}
                for o in outcomes
            ],
            assignee=(assignee.display_name or assignee.username) if assignee else None,
            can_claim=may_claim or (mine and task.status == TaskStatus.OPEN),
            # Outcomes only once the task is claimed: the claim is when the call starts.
            can_complete=mine and task.status == TaskStatus.CLAIMED,
            can_reassign=user.can("reassign") and task.status in ACTIVE and may_hand_on(user, session, task),
            can_reveal=can_reveal(user, session, task),
            offered=offered,
            closing=tuple(o for o in offered if o in CLOSING_OUTCOMES),
            script=script.text,
            script_error=script.error,
            reason=reason_of(task, customer, trigger),
            notes=masked(task.notes, customer, limit=None) if task.notes else None,
        )


def _outcome_text(outcome: Outcome, notes: dict[int | None, str | None], customer: Customer) -> str:
    """What an outcome says, masked: a call's notes (from its task), a reply's text."""
    if outcome.task_id is not None:
        return masked(notes.get(outcome.task_id) or "", customer)
    # Replies can quote phone numbers or addresses: mask before anyone reads them.
    return mask_text(str(outcome.detail.get("text", "")))[:200] if outcome.detail else ""


def _moment(stored: Any) -> datetime | None:
    """A moment an outcome's detail keeps as ISO text (the call back's time), or None."""
    try:
        return datetime.fromisoformat(stored) if isinstance(stored, str) else None
    except ValueError:
        return None


def masked_customer(customer: Customer) -> dict[str, Any]:
    return {
        "external_id": customer.external_id,
        "name": mask_name(customer.name),
        "phone": mask_phone(customer.phone),
        "email": mask_email(customer.email),
        "tier": customer.tier,
        "branch": customer.branch,
        "locale": customer.locale,
        "timezone": customer.timezone,
        "consent_sms": customer.consent_sms,
        "consent_wechat": customer.consent_wechat,
        "consent_email": customer.consent_email,
    }
