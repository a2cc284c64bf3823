"""A supervisor handing tasks to their team: one (reassign) or many at once (assign_many)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from console import queues
from console.auth import CurrentUser, audit
from console.task_rights import (
    ACTIVE,
    TaskConflict,
    TaskError,
    TaskForbidden,
    TaskInvalid,
    can_view,
    load_visible,
    may_hand_on,
)
from store.clock import utcnow
from store.db import session_scope
from store.models import AgentTask, AppUser, Customer, TaskStatus


def _give(session: Session, user: CurrentUser, task: AgentTask, target: AppUser, now: datetime,
          desk: queues.Desk) -> None:
    """Hand ``task`` to ``target`` for ``user`` (a supervisor); raises TaskError when it may not be."""
    if not may_hand_on(user, session, task):
        raise TaskForbidden("forbidden")
    if task.status not in ACTIVE:
        raise TaskConflict("not_active")
    if not target.active or target.role not in ("agent", "supervisor"):
        raise TaskInvalid("bad_assignee")
    if user.team is not None and target.team != user.team:
        # The task is hers to give; the person chosen is not hers to give it to: a wrong choice in the
        # form (crafted, or drawn before the agent changed team), not a right she lacks.
        raise TaskInvalid("other_team", "the agent chosen is in another team: choose an agent of your team")
    customer = session.get(Customer, task.customer_id)
    needed = desk.requires(task, customer.locale if customer else None)
    if target.role == "agent" and not needed <= queues.effective_skills(target.skills or ()):
        # A licence or a language the call needs is not the supervisor's to waive.
        raise TaskInvalid("lacks_skills")
    if target.role == "agent" and customer is not None and not _advisor_allows(session, customer, target):
        # A diamond customer is served by their own advisor (console.queues.Scope.allows): the pool
        # shows their tasks to no other agent, and handing one on must not go round that.
        raise TaskInvalid("advisor_only")
    previous = task.assignee_id
    # Back to open: the new assignee claims it when they start, so the claim time stays honest. The
    # guard on the previous assignee and status makes a claim or completion in between win.
    result = session.connection().execute(
        update(AgentTask)
        .where(col(AgentTask.id) == task.id, col(AgentTask.status).in_(ACTIVE),
               col(AgentTask.assignee_id).is_(None) if previous is None else col(AgentTask.assignee_id) == previous)
        .values(assignee_id=target.id, status=TaskStatus.OPEN, claimed_at=None)
    )
    if result.rowcount != 1:
        raise TaskConflict("already_taken")
    assert task.id is not None
    audit(session, user.username, "assign" if previous is None else "reassign", "task", task.id,
          {"from_user_id": previous, "to_user_id": target.id}, at=now)


def _advisor_allows(session: Session, customer: Customer, target: AppUser) -> bool:
    if customer.tier != "diamond" or customer.advisor_id is None or customer.advisor_id == target.id:
        return True
    advisor = session.get(AppUser, customer.advisor_id)
    return advisor is None or not advisor.active  # a departed advisor's customers are the team's again


def reassign(user: CurrentUser, task_id: int, to_user_id: int, *, now: datetime | None = None,
             db_url: str | None = None) -> None:
    now = now or utcnow()
    if not user.can("reassign"):
        raise TaskForbidden("forbidden")
    with session_scope(db_url) as session:
        task = load_visible(user, session, task_id)
        target = session.get(AppUser, to_user_id)
        if target is None:
            raise TaskInvalid("bad_assignee")
        _give(session, user, task, target, now, queues.current())


@dataclass
class Assigned:
    """What a bulk assignment did: how many tasks moved, and why the others did not."""

    assigned: list[int] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)


MAX_BULK = 200


def assign_many(user: CurrentUser, task_ids: list[int], to_user_id: int, *, now: datetime | None = None,
                db_url: str | None = None) -> Assigned:
    """Give each of ``task_ids`` (pool or team tasks) to one agent; each task is its own decision.

    A task the supervisor may not see or give counts as ``forbidden``, one that needs a skill the
    agent lacks as ``lacks_skills``; the rest are assigned. Raises TaskInvalid when the agent
    cannot take work at all (``bad_assignee``) or is not of the supervisor's team (``other_team``).
    """
    now = now or utcnow()
    if not user.can("reassign"):
        raise TaskForbidden("forbidden")
    done = Assigned()
    desk = queues.current()
    with session_scope(db_url) as session:
        target = session.get(AppUser, to_user_id)
        if target is None or not target.active or target.role not in ("agent", "supervisor"):
            raise TaskInvalid("bad_assignee")
        if user.team is not None and target.team != user.team:
            # An active agent all the same: "choose an active agent" sent the supervisor looking for the
            # wrong mistake. The words one task's handover gives (``_give``).
            raise TaskInvalid("other_team", "the agent chosen is in another team: choose an agent of your team")
        for task_id in dict.fromkeys(task_ids[:MAX_BULK]):
            task = session.get(AgentTask, task_id)
            try:
                if task is None or not can_view(user, session, task):
                    raise TaskForbidden("forbidden")
                # _give writes only once every check passed: a refusal leaves nothing to undo.
                _give(session, user, task, target, now, desk)
                done.assigned.append(task_id)
            except TaskError as exc:
                done.refused[exc.code] = done.refused.get(exc.code, 0) + 1
    return done


# --- supervisor views ---------------------------------------------------------------------------


def team_members(user: CurrentUser, *, db_url: str | None = None) -> list[AppUser]:
    """Who a supervisor may give tasks to: the active agents and supervisors of their team (all without one)."""
    with session_scope(db_url) as session:
        stmt = select(AppUser).where(col(AppUser.role).in_(("agent", "supervisor")), col(AppUser.active) == True)  # noqa: E712
        if user.team is not None:
            stmt = stmt.where(AppUser.team == user.team)
        return list(session.exec(stmt.order_by(col(AppUser.username))).all())
