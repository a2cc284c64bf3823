"""Who may do what with one task: see it, claim it, oversee it, unmask its customer; and the refusals.

The same rules as the inbox's lists (``console.task_inbox``), in Python for one task, so that a
list and a task page never disagree. One refusal (``TaskNotFound``) for "no such task" and "not
yours", so ids cannot be probed.
"""

from __future__ import annotations

from sqlmodel import Session

from console import queues
from console.auth import CurrentUser
from store.models import AgentTask, AppUser, Customer, TaskStatus

SUPERVISOR_QUEUE = queues.SUPERVISOR_QUEUE
ACTIVE = (TaskStatus.OPEN, TaskStatus.CLAIMED)


class TaskError(Exception):
    status = 400

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


class TaskNotFound(TaskError):
    status = 404


class TaskForbidden(TaskError):
    status = 403


class TaskConflict(TaskError):
    status = 409


class TaskInvalid(TaskError):
    status = 422


def scope_for(session: Session, user: CurrentUser, desk: queues.Desk | None = None) -> queues.Scope:
    return queues.scope_of(session, user.id, user.role, user.team, user.skills, desk)


def _assignee_team(session: Session, task: AgentTask) -> str | None:
    if task.assignee_id is None:
        return None
    assignee = session.get(AppUser, task.assignee_id)
    return assignee.team if assignee else None


def supervises(user: CurrentUser, session: Session, task: AgentTask) -> bool:
    """A supervisor oversees the tasks of their team's agents and the pool of their team's queues.

    A supervisor without a team oversees every team.
    """
    if user.role != "supervisor":
        return False
    if task.queue == SUPERVISOR_QUEUE or task.assignee_id == user.id or user.team is None:
        return True
    if task.assignee_id is None:
        return scope_for(session, user).queue_visible(task.queue)
    return _assignee_team(session, task) == user.team



def may_hand_on(user: CurrentUser, session: Session, task: AgentTask) -> bool:
    """Whether ``user`` (a supervisor) may give ``task`` to someone (reassign, bulk assignment).

    What they oversee, except a task someone holds outside their team: an escalation another team's
    supervisor has is on every supervisor's screen (``supervises``) but stays that team's, or a
    supervisor could take it into their own team and have it, and its customer's details, for the asking.
    """
    if not supervises(user, session, task):
        return False
    if task.assignee_id is None or task.assignee_id == user.id or user.team is None:
        return True
    return _assignee_team(session, task) == user.team

def can_view(user: CurrentUser, session: Session, task: AgentTask) -> bool:
    if not user.can("tasks"):
        return False
    if task.assignee_id == user.id:
        return True
    if claimable(user, session, task):
        return True
    return supervises(user, session, task)


def claimable(user: CurrentUser, session: Session, task: AgentTask) -> bool:
    """An open task nobody has, in the user's pool (the same rules as the inbox's list)."""
    if task.status != TaskStatus.OPEN or task.assignee_id is not None:
        return False
    if (task.queue == SUPERVISOR_QUEUE) != (user.role == "supervisor"):
        return False
    if user.role == "supervisor":
        return True
    customer = session.get(Customer, task.customer_id)
    return customer is not None and scope_for(session, user).allows(task, customer)


def can_reveal(user: CurrentUser, session: Session, task: AgentTask) -> bool:
    """Whether ``user`` may unmask this task's customer (SPEC §9: agents see masked PII; every
    view of unmasked PII is audited).

    Only the person working the task: its assignee once they have claimed it (an open task in the
    queue, or one merely assigned, is not yet a call in progress; a closed one is over). Overseeing
    a task is not working it: a supervisor sees their team's tasks as the agents do, masked, and to
    call a customer takes the task (reassigns it to themselves and claims it), so that the reveal is
    theirs on a call of their own, counted and audited as any other.
    """
    return user.can("tasks") and task.assignee_id == user.id and task.status == TaskStatus.CLAIMED


def reveal_refusal(user: CurrentUser, session: Session, task: AgentTask) -> str:
    """Why ``user`` may not unmask ``task``: not claimed yet when claiming it is theirs to do, else not
    theirs to work (another's, or closed)."""
    if (task.assignee_id == user.id and task.status == TaskStatus.OPEN) or claimable(user, session, task):
        return "reveal_needs_claim"
    return "reveal_not_working"


def load_visible(user: CurrentUser, session: Session, task_id: int) -> AgentTask:
    if not user.can("tasks"):
        raise TaskForbidden("forbidden")  # the role, whatever the id: tells nothing about which ids exist
    task = session.get(AgentTask, task_id)
    # One answer for "no such task" and "not yours": a different one would tell anyone which ids exist.
    if task is None or not can_view(user, session, task):
        raise TaskNotFound("task_not_found")
    return task
