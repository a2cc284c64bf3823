"""The task service: inbox, task context, claim, complete with an outcome, reassign, reveal.

Every function opens its own transaction and emits events only after it committed
(see ``console.events_bridge``). State changes that can race (two agents claiming
the same task) are single conditional UPDATEs, so exactly one of them wins on
SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, func, or_, text, union_all, update
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col, select

from console import queues, sla
from console.auth import CurrentUser, audit
from console.config import ConsoleSettings
from console.events_bridge import emit
from console.i18n import DISPLAY_ZONE
from console.reasons import Reason, reason_of, trigger_of
from console.scripts import render_script
from engine.language.settings_model import CLOSING_OUTCOMES, OUTCOME_CODES
from store.clock import as_utc, utcnow, zone
from store.db import session_scope
from store.masking import mask_email, mask_name, mask_phone, mask_text
from store.models import AgentTask, AppUser, AuditLog, Customer, Outcome, Policy, TaskStatus, Touch

log = logging.getLogger(__name__)

# Every outcome code; each queue offers some of them (config/queues.yaml, console.queues).
OUTCOMES: tuple[str, ...] = OUTCOME_CODES
MAX_ATTEMPTS = 3
RETRY_AFTER = timedelta(hours=4)
MAX_CALLBACK_AHEAD = timedelta(days=90)
SUPERVISOR_QUEUE = queues.SUPERVISOR_QUEUE
COUNT_CAP = 1000
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


class RevealLimited(TaskError):
    """Too many reveals by this user in the rolling window; ``retry_after`` seconds until the next is allowed."""

    status = 429

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__("reveal_limited")
        self.limit = limit
        self.retry_after = retry_after


@dataclass(frozen=True)
class RevealPolicy:
    """How often one user may unmask customers, and what counts as a burst worth an alert."""

    limit: int = 30
    window: timedelta = timedelta(hours=1)
    burst_count: int = 10
    burst_window: timedelta = timedelta(minutes=10)


def reveal_policy(settings: ConsoleSettings) -> RevealPolicy:
    return RevealPolicy(limit=settings.reveal_limit_per_hour, window=timedelta(hours=1),
                        burst_count=settings.reveal_burst_count,
                        burst_window=timedelta(seconds=settings.reveal_burst_window))


# --- views -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRow:
    id: int
    customer: str  # masked name
    tier: str | None
    queue: str
    priority: int
    status: str
    due_at: datetime
    attempt: int
    escalated: bool
    assignee: str | None
    seconds_left: float
    # Past the warning time of its SLA but not yet overdue (console.sla sets the warning time).
    at_risk: bool = False

    @property
    def overdue(self) -> bool:
        return self.seconds_left < 0


@dataclass(frozen=True)
class InboxFilter:
    """What the agent narrowed the inbox to; empty fields narrow nothing."""

    queue: str | None = None
    tier: str | None = None
    overdue: bool = False
    due_today: bool = False  # due before the end of today (display zone), overdue ones included
    customer: str | None = None  # the customer's external id, exactly

    @property
    def active(self) -> bool:
        return bool(self.queue or self.tier or self.overdue or self.due_today or self.customer)

    def query(self) -> dict[str, str]:
        """As URL parameters (for the pager's links)."""
        out = {"queue": self.queue or "", "tier": self.tier or "", "customer": self.customer or ""}
        if self.overdue:
            out["overdue"] = "1"
        if self.due_today:
            out["due_today"] = "1"
        return {k: v for k, v in out.items() if v}


def end_of_today(now: datetime) -> datetime:
    local = now.astimezone(zone(DISPLAY_ZONE))
    return datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=local.tzinfo)


def _filter_conditions(session: Session, f: InboxFilter, now: datetime) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if f.queue:
        out.append(col(AgentTask.queue) == f.queue)
    if f.tier:
        out.append(col(Customer.tier) == f.tier)
    if f.overdue:
        out.append(col(AgentTask.due_at) < now)
    if f.due_today:
        out.append(col(AgentTask.due_at) < end_of_today(now))
    if f.customer:
        # The customer first, by its unique key; then their tasks by the customer_id index.
        found = session.exec(select(Customer.id).where(Customer.external_id == f.customer)).first()
        out.append(col(AgentTask.customer_id) == found if found is not None else false())
    return out


@dataclass
class Inbox:
    mine: list[TaskRow]
    claimable: list[TaskRow]
    mine_count: int
    claimable_count: int
    mine_overdue: int
    page: int
    page_size: int
    cap: int = COUNT_CAP
    filters: InboxFilter = InboxFilter()
    queues: list[str] = field(default_factory=list)  # the queues the user works (for the filter)
    mine_at_risk: int = 0  # own tasks past their SLA warning time, not yet overdue

    @property
    def has_next(self) -> bool:
        return (self.page + 1) * self.page_size < self.claimable_count


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


@dataclass(frozen=True)
class Completion:
    task_id: int
    outcome: str
    follow_up_task_id: int | None
    next_task_id: int | None


def _row(task: AgentTask, name: str, tier: str | None, assignee: str | None, now: datetime) -> TaskRow:
    assert task.id is not None
    due = as_utc(task.due_at)
    at_risk = task.warn_at is not None and as_utc(task.warn_at) <= now < due
    return TaskRow(task.id, mask_name(name), tier, task.queue, task.priority, task.status, task.due_at,
                   task.attempt, task.escalated, assignee, (due - now).total_seconds(), at_risk)


def _capped_count(session: Session, *conditions: ColumnElement[bool], customer: bool = False) -> int:
    # Counting stops at COUNT_CAP+1 rows so a 100k queue costs no more than a short index walk.
    stmt = select(AgentTask.id)
    if customer:
        stmt = stmt.join(Customer, col(Customer.id) == AgentTask.customer_id)
    sub = stmt.where(*conditions).limit(COUNT_CAP + 1).subquery()
    return int(session.exec(select(func.count()).select_from(sub)).one())


def scope_for(session: Session, user: CurrentUser, desk: queues.Desk | None = None) -> queues.Scope:
    return queues.scope_of(session, user.id, user.role, user.team, user.skills, desk)


def _claimable_conditions(user: CurrentUser, scope: queues.Scope, *, by_queue: bool = False
                          ) -> list[ColumnElement[bool]]:
    """The pool ``user`` may take from (a query joining Customer): open, nobody's, in their scope.

    ``by_queue``: the caller names one visible queue itself, so the queue conditions are left out.
    """
    base: list[ColumnElement[bool]] = [col(AgentTask.assignee_id).is_(None), col(AgentTask.status) == TaskStatus.OPEN]
    if user.role == "supervisor":
        # Escalations wait for a supervisor; the agents' queues are on the supervisor desk.
        base.append(col(AgentTask.queue) == SUPERVISOR_QUEUE)
    else:
        if not by_queue:
            base.append(col(AgentTask.queue) != SUPERVISOR_QUEUE)
        base.extend(scope.conditions(queues=not by_queue))
    return base


def _rows_due_first(session: Session, where: list[ColumnElement[bool]], now: datetime, *, limit: int,
                    offset: int = 0) -> list[TaskRow]:
    return [
        _row(t, name, tier, None, now)
        for t, name, tier in session.exec(
            select(AgentTask, Customer.name, Customer.tier)
            .join(Customer, col(Customer.id) == AgentTask.customer_id)
            .where(*where)
            .order_by(col(AgentTask.due_at), col(AgentTask.id))
            .offset(offset)
            .limit(limit)
        )
    ]


def queue_names(session: Session) -> list[str]:
    """Every queue name the task table holds, by a loose index scan: one index probe per name.

    (A recursive query that asks the (queue, status, due_at) index for the next name after the
    last one; both SQLite and PostgreSQL answer each step from the index.)
    """
    rows = session.connection().execute(text(
        "WITH RECURSIVE q(name) AS ("
        " SELECT MIN(queue) FROM agent_task"
        " UNION ALL"
        " SELECT (SELECT MIN(queue) FROM agent_task WHERE queue > q.name) FROM q WHERE q.name IS NOT NULL"
        ") SELECT name FROM q WHERE name IS NOT NULL"
    )).all()
    return [str(r[0]) for r in rows]


def _pool(session: Session, user: CurrentUser, scope: queues.Scope, filters: InboxFilter,
          narrow: list[ColumnElement[bool]], now: datetime, offset: int, limit: int) -> tuple[list[TaskRow], int]:
    """One page of the pool ``user`` may claim from, and its (capped) size.

    An agent's pool is read queue by queue, each branch from ``ix_task_pool`` (queue, status,
    assignee, due time) in due order, in one UNION ALL: a team whose queues hold a few thousand
    of 100k open tasks would otherwise walk the whole pool in due order to fill a page and count
    it. One customer's tasks come from the customer's index instead.
    """
    if user.role == "supervisor" or filters.customer:
        every = [*_claimable_conditions(user, scope), *narrow]
        return (_rows_due_first(session, every, now, offset=offset, limit=limit),
                _capped_count(session, *every, customer=True))
    where = [*_claimable_conditions(user, scope, by_queue=True), *narrow]
    names = [filters.queue] if filters.queue else queue_names(session)
    names = [n for n in names if n != SUPERVISOR_QUEUE and scope.queue_visible(n)]
    if not names:
        return [], 0

    def branch(name: str, columns: tuple[Any, ...], cap: int, ordered: bool = True) -> Any:
        stmt = (select(*columns).join(Customer, col(Customer.id) == AgentTask.customer_id)
                .where(col(AgentTask.queue) == name, *where))
        if ordered:
            stmt = stmt.order_by(col(AgentTask.due_at), col(AgentTask.id))
        return stmt.limit(cap).subquery()

    firsts = [branch(n, (col(AgentTask.id), col(AgentTask.due_at)), offset + limit) for n in names]
    merged = union_all(*[select(b.c.id, b.c.due_at) for b in firsts]).subquery()
    ids = list(session.exec(select(merged.c.id).order_by(merged.c.due_at, merged.c.id).offset(offset).limit(limit)))
    rows = _rows_due_first(session, [col(AgentTask.id).in_(ids)], now, limit=limit) if ids else []
    # The outer LIMIT stops reading the branches once the cap is reached (both databases read a
    # UNION ALL lazily), so a big first queue spares the count of the others.
    counted = [branch(n, (col(AgentTask.id),), COUNT_CAP + 1, ordered=False) for n in names]
    capped = select(union_all(*[select(c.c.id) for c in counted]).subquery().c.id).limit(COUNT_CAP + 1).subquery()
    return rows, int(session.exec(select(func.count()).select_from(capped)).one())


def inbox(user: CurrentUser, *, page: int = 0, page_size: int = 25, now: datetime | None = None,
          filters: InboxFilter | None = None, db_url: str | None = None) -> Inbox:
    """The user's own active tasks and the pool they may claim from, most urgent first, narrowed by ``filters``.

    An agent's pool is the queues of their team (and queues no team works), less what needs a skill
    they lack, and a diamond customer's tasks only for that customer's advisor (``console.queues``).
    """
    now = now or utcnow()
    page = max(0, page)
    filters = filters or InboxFilter()
    desk = queues.current()
    with session_scope(db_url) as session:
        scope = scope_for(session, user, desk)
        narrow = _filter_conditions(session, filters, now)
        mine_where: list[ColumnElement[bool]] = [col(AgentTask.assignee_id) == user.id,
                                                 col(AgentTask.status).in_(ACTIVE), *narrow]
        mine = _rows_due_first(session, mine_where, now, limit=page_size)
        claimable, claimable_count = _pool(session, user, scope, filters, narrow, now, page * page_size, page_size)
        by_customer = bool(filters.tier)
        mine_count = _capped_count(session, *mine_where, customer=by_customer)
        mine_overdue = _capped_count(session, *mine_where, col(AgentTask.due_at) < now, customer=by_customer)
        mine_at_risk = _capped_count(session, *mine_where, col(AgentTask.warn_at) <= now,
                                     col(AgentTask.due_at) >= now, customer=by_customer)
    worked = [SUPERVISOR_QUEUE] if user.role == "supervisor" else [q for q in desk.declared
                                                                    if q != SUPERVISOR_QUEUE and scope.queue_visible(q)]
    return Inbox(mine, claimable, mine_count, claimable_count, mine_overdue, page, page_size, filters=filters,
                 queues=worked, mine_at_risk=mine_at_risk)


# --- rights on one task -------------------------------------------------------------------------


def _assignee_team(session: Session, task: AgentTask) -> str | None:
    if task.assignee_id is None:
        return None
    assignee = session.get(AppUser, task.assignee_id)
    return assignee.team if assignee else None


def _supervises(user: CurrentUser, session: Session, task: AgentTask) -> bool:
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


def can_view(user: CurrentUser, session: Session, task: AgentTask) -> bool:
    if not user.can("tasks"):
        return False
    if task.assignee_id == user.id:
        return True
    if _claimable(user, session, task):
        return True
    return _supervises(user, session, task)


def _claimable(user: CurrentUser, session: Session, task: AgentTask) -> bool:
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
    """Whether ``user`` may unmask this task's customer (SPEC §9).

    Only someone working the task: its assignee once they have claimed it (an open task in the
    queue, or one merely assigned, is not yet a call in progress), or a supervisor of the
    assignee's team. Being able to see a task is not enough.
    """
    if not user.can("tasks"):
        return False
    if task.assignee_id == user.id:
        return task.status == TaskStatus.CLAIMED
    if user.role != "supervisor" or task.assignee_id is None:
        return False
    # Same convention as _supervises: a supervisor without a team oversees every team.
    return user.team is None or _assignee_team(session, task) == user.team


def _load_visible(user: CurrentUser, session: Session, task_id: int) -> AgentTask:
    if not user.can("tasks"):
        raise TaskForbidden("forbidden")  # the role, whatever the id: tells nothing about which ids exist
    task = session.get(AgentTask, task_id)
    # One answer for "no such task" and "not yours": a different one would tell anyone which ids exist.
    if task is None or not can_view(user, session, task):
        raise TaskNotFound("task_not_found")
    return task


def detail(user: CurrentUser, task_id: int, *, db_url: str | None = None) -> TaskDetail:
    with session_scope(db_url) as session:
        task = _load_visible(user, session, task_id)
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
        masked = masked_customer(customer)
        trigger = trigger_of(session, task)
        script = render_script(session, task, customer, user.display_name, trigger)
        claimable = _claimable(user, session, task)
        mine = task.assignee_id == user.id
        offered = queues.outcomes_of(task.queue)
        return TaskDetail(
            task=task,
            customer=masked,
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
                 # Replies can quote phone numbers or addresses: mask before anyone reads them.
                 "text": mask_text(str(o.detail.get("text", "")))[:200] if o.detail else ""}
                for o in outcomes
            ],
            assignee=(assignee.display_name or assignee.username) if assignee else None,
            can_claim=claimable or (mine and task.status == TaskStatus.OPEN),
            # Outcomes only once the task is claimed: the claim is when the call starts.
            can_complete=mine and task.status == TaskStatus.CLAIMED,
            can_reassign=user.can("reassign") and task.status in ACTIVE and _supervises(user, session, task),
            can_reveal=can_reveal(user, session, task),
            offered=offered,
            closing=tuple(o for o in offered if o in CLOSING_OUTCOMES),
            script=script.text,
            script_error=script.error,
            reason=reason_of(task, customer, trigger),
        )


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


def reveal(user: CurrentUser, task_id: int, *, policy: RevealPolicy | None = None, db_url: str | None = None,
           now: datetime | None = None) -> dict[str, str]:
    """The customer's unmasked contact details, for someone working the task; every attempt is audited.

    Refusals are audited too (``reveal_refused``), so the audit view shows someone probing
    task ids or hammering the limit. Raises TaskNotFound (task unknown or not visible),
    TaskForbidden (visible, but not claimed by the user) or RevealLimited.
    """
    policy = policy or RevealPolicy()
    now = now or utcnow()
    refusal: TaskError
    with session_scope(db_url) as session:
        try:
            return _unmask(session, user, _load_visible(user, session, task_id), policy, now)
        except TaskError as exc:
            refusal = exc
            audit(session, user.username, "reveal_refused", "task", task_id, {"reason": exc.code}, at=now)
    raise refusal


def _unmask(session: Session, user: CurrentUser, task: AgentTask, policy: RevealPolicy, now: datetime
            ) -> dict[str, str]:
    if not can_reveal(user, session, task):
        raise TaskForbidden("reveal_needs_claim")
    _serialise_reveals_of(session, user)
    recent = _reveal_times(session, user.username, now - policy.window)
    if len(recent) >= policy.limit:
        # A slot frees up when the reveal that put the user at the limit leaves the window.
        frees_at = recent[len(recent) - policy.limit] + policy.window
        raise RevealLimited(policy.limit, max(1, math.ceil((frees_at - now).total_seconds())))
    customer = session.get(Customer, task.customer_id)
    assert customer is not None and customer.id is not None
    audit(session, user.username, "reveal", "customer", customer.id,
          {"task_id": task.id, "fields": ["name", "phone", "email"]}, at=now)
    in_burst = sum(1 for at in recent if at > now - policy.burst_window) + 1
    if in_burst == policy.burst_count:
        # Logged once, as the user reaches the threshold: the alert for monitoring (the audit page lists it too).
        log.warning("reveal burst: user %s unmasked %d customers within %d minutes", user.username, in_burst,
                    int(policy.burst_window.total_seconds() // 60))
    return {"name": customer.name, "phone": customer.phone or "", "email": customer.email or ""}


def _serialise_reveals_of(session: Session, user: CurrentUser) -> None:
    # Two reveals by one user at once (two tabs, two workers) must not both pass a count taken
    # before either wrote its audit row. Writing the user's row first makes the second wait for
    # the first to commit: a row lock on PostgreSQL, the write lock on SQLite.
    session.connection().execute(update(AppUser).where(col(AppUser.id) == user.id).values(id=col(AppUser.id)))


def _reveal_times(session: Session, username: str, since: datetime) -> list[datetime]:
    return [
        as_utc(at)
        for at in session.exec(
            select(AuditLog.at)
            .where(col(AuditLog.actor) == username, col(AuditLog.action) == "reveal", col(AuditLog.at) > since)
            .order_by(col(AuditLog.at))
        )
    ]


@dataclass(frozen=True)
class RevealBurst:
    """A user whose attempts to unmask customers reached the burst threshold within the burst window."""

    actor: str
    peak: int  # attempts (reveals and refusals) in the busiest burst window
    window_start: datetime
    window_end: datetime
    reveals: int  # in the whole period looked at
    refused: int


REVEAL_ACTIONS = ("reveal", "reveal_refused")


def reveal_bursts(policy: RevealPolicy, *, since: datetime, actors: list[str] | None = None,
                  db_url: str | None = None) -> list[RevealBurst]:
    """Users with a burst of reveal attempts since ``since``, busiest first (``actors`` narrows to a team)."""
    if actors is not None and not actors:
        return []
    period = [col(AuditLog.action).in_(REVEAL_ACTIONS), col(AuditLog.at) > since]
    if actors is not None:
        period.append(col(AuditLog.actor).in_(actors))
    bursts: list[RevealBurst] = []
    with session_scope(db_url) as session:
        # Only users with enough attempts in the whole period can have a burst: the rows read stay few.
        candidates = list(session.exec(
            select(AuditLog.actor).where(*period).group_by(col(AuditLog.actor))
            .having(func.count() >= policy.burst_count)
        ))
        for actor in candidates:
            rows = [(as_utc(at), action) for at, action in session.exec(
                select(AuditLog.at, AuditLog.action).where(*period, col(AuditLog.actor) == actor)
                .order_by(col(AuditLog.at)))]
            burst = _busiest_window(actor, rows, policy)
            if burst is not None:
                bursts.append(burst)
    bursts.sort(key=lambda b: (-b.peak, b.actor))
    return bursts


def _busiest_window(actor: str, rows: list[tuple[datetime, str]], policy: RevealPolicy) -> RevealBurst | None:
    window: deque[datetime] = deque()
    peak, start, end = 0, rows[0][0], rows[0][0]
    for at, _action in rows:
        window.append(at)
        while window[0] <= at - policy.burst_window:
            window.popleft()
        if len(window) > peak:
            peak, start, end = len(window), window[0], at
    if peak < policy.burst_count:
        return None
    reveals = sum(1 for _at, action in rows if action == "reveal")
    return RevealBurst(actor, peak, start, end, reveals, len(rows) - reveals)


# --- state changes ------------------------------------------------------------------------------


def claim(user: CurrentUser, task_id: int, *, now: datetime | None = None, db_url: str | None = None) -> None:
    now = now or utcnow()
    with session_scope(db_url) as session:
        task = _load_visible(user, session, task_id)
        if task.status != TaskStatus.OPEN:
            raise TaskConflict("not_open")
        allowed = task.assignee_id == user.id or _claimable(user, session, task)
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
    ``require_claim`` (the desk's pages) the task must be claimed by the user first
    (``claim_first``): the claim marks the start of the call. Without it (the API) completing an
    open task the user may take claims it in the same step.
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
        task = _load_visible(user, session, task_id)
        if task.status not in ACTIVE:
            raise TaskConflict("not_active")
        if not (task.assignee_id == user.id or _claimable(user, session, task)):
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

        emits.append(("task.completed", customer.external_id,
                      {"task_id": task.id, "outcome": outcome, "queue": task.queue}, f"task.completed:{task.id}"))
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


def next_task_id(user: CurrentUser, *, db_url: str | None = None) -> int | None:
    """The user's most urgent task, else the most urgent claimable one."""
    with session_scope(db_url) as session:
        mine = session.exec(
            select(AgentTask.id).where(AgentTask.assignee_id == user.id, col(AgentTask.status).in_(ACTIVE))
            .order_by(col(AgentTask.due_at), col(AgentTask.id)).limit(1)
        ).first()
        if mine is not None:
            return mine
        return session.exec(
            select(AgentTask.id).join(Customer, col(Customer.id) == AgentTask.customer_id)
            .where(*_claimable_conditions(user, scope_for(session, user)))
            .order_by(col(AgentTask.due_at), col(AgentTask.id)).limit(1)
        ).first()


def _give(session: Session, user: CurrentUser, task: AgentTask, target: AppUser, now: datetime,
          desk: queues.Desk) -> None:
    """Hand ``task`` to ``target`` for ``user`` (a supervisor); raises TaskError when it may not be."""
    if not _supervises(user, session, task):
        raise TaskForbidden("forbidden")
    if task.status not in ACTIVE:
        raise TaskConflict("not_active")
    if not target.active or target.role not in ("agent", "supervisor"):
        raise TaskInvalid("bad_assignee")
    if user.team is not None and target.team != user.team:
        raise TaskForbidden("other_team")
    customer = session.get(Customer, task.customer_id)
    needed = desk.requires(task, customer.locale if customer else None)
    if target.role == "agent" and not needed <= queues.effective_skills(target.skills or ()):
        # A licence or a language the call needs is not the supervisor's to waive.
        raise TaskInvalid("lacks_skills")
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


def reassign(user: CurrentUser, task_id: int, to_user_id: int, *, now: datetime | None = None,
             db_url: str | None = None) -> None:
    now = now or utcnow()
    if not user.can("reassign"):
        raise TaskForbidden("forbidden")
    with session_scope(db_url) as session:
        task = _load_visible(user, session, task_id)
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
    cannot take work at all.
    """
    now = now or utcnow()
    if not user.can("reassign"):
        raise TaskForbidden("forbidden")
    done = Assigned()
    desk = queues.current()
    with session_scope(db_url) as session:
        target = session.get(AppUser, to_user_id)
        if target is None or not target.active or target.role not in ("agent", "supervisor") or (
                user.team is not None and target.team != user.team):
            raise TaskInvalid("bad_assignee")
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


def list_tasks(*, assignee_id: int | None = None, queue: str | None = None,
               statuses: tuple[str, ...] | None = None,
               unassigned: bool = False, limit: int = 50, offset: int = 0, now: datetime | None = None,
               db_url: str | None = None) -> list[TaskRow]:
    """Tasks by filter in SLA order (for the API)."""
    now = now or utcnow()
    with session_scope(db_url) as session:
        stmt = (
            select(AgentTask, Customer.name, Customer.tier, AppUser.display_name)
            .join(Customer, col(Customer.id) == AgentTask.customer_id)
            .join(AppUser, col(AppUser.id) == AgentTask.assignee_id, isouter=True)
        )
        if assignee_id is not None:
            stmt = stmt.where(AgentTask.assignee_id == assignee_id)
        if unassigned:
            stmt = stmt.where(col(AgentTask.assignee_id).is_(None))
        if queue is not None:
            stmt = stmt.where(AgentTask.queue == queue)
        if statuses:
            stmt = stmt.where(col(AgentTask.status).in_(statuses))
        stmt = stmt.order_by(col(AgentTask.due_at), col(AgentTask.id)).offset(offset).limit(limit)
        return [_row(t, name, tier, assignee, now) for t, name, tier, assignee in session.exec(stmt)]
