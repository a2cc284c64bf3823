"""The desk's lists: an agent's own tasks and the pool they may claim from, filtered and paged.

Every list is read in due order from the task indexes (``ix_task_pool``: queue, status,
assignee, due time) and counted only up to ``COUNT_CAP``, so a 100k-task pool answers as fast
as a small one (``benchmarks/inbox_bench.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, func, text, union_all
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col, select

from console import queues
from console.auth import CurrentUser
from console.i18n import DISPLAY_ZONE
from console.task_rights import ACTIVE, SUPERVISOR_QUEUE, scope_for
from store.clock import as_utc, utcnow, zone
from store.db import session_scope
from store.masking import mask_name
from store.models import AgentTask, AppUser, Customer, TaskStatus

COUNT_CAP = 1000


@dataclass(frozen=True)
class TaskFacts:
    """What a list shows of any task; the API's answer (``console.api.TaskOut``) starts with the same."""

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


@dataclass(frozen=True)
class TaskRow(TaskFacts):
    seconds_left: float
    # Past the warning time of its SLA but not yet overdue (console.sla sets the warning time).
    at_risk: bool = False
    warn_at: datetime | None = None

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
    unknown_queue: str | None = None  # the filter's queue as asked for, when no desk declares it (then not applied)

    @property
    def has_next(self) -> bool:
        return (self.page + 1) * self.page_size < self.claimable_count


def task_row(task: AgentTask, name: str, tier: str | None, assignee: str | None, now: datetime) -> TaskRow:
    assert task.id is not None
    due = as_utc(task.due_at)
    at_risk = task.warn_at is not None and as_utc(task.warn_at) <= now < due
    return TaskRow(task.id, mask_name(name), tier, task.queue, task.priority, task.status, task.due_at,
                   task.attempt, task.escalated, assignee, (due - now).total_seconds(), at_risk,
                   as_utc(task.warn_at) if task.warn_at is not None else None)


def _capped_count(session: Session, *conditions: ColumnElement[bool], customer: bool = False) -> int:
    # Counting stops at COUNT_CAP+1 rows so a 100k queue costs no more than a short index walk.
    stmt = select(AgentTask.id)
    if customer:
        stmt = stmt.join(Customer, col(Customer.id) == AgentTask.customer_id)
    sub = stmt.where(*conditions).limit(COUNT_CAP + 1).subquery()
    return int(session.exec(select(func.count()).select_from(sub)).one())


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
        task_row(t, name, tier, None, now)
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
    unknown: str | None = None
    with session_scope(db_url) as session:
        if filters.queue is not None and _no_such_queue(session, filters.queue, desk.declared):
            # A mistyped or stale link would narrow to nothing: say so, and show the whole inbox.
            unknown, filters = filters.queue, replace(filters, queue=None)
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
                 queues=worked, mine_at_risk=mine_at_risk, unknown_queue=unknown)


def _no_such_queue(session: Session, queue: str, declared: list[str]) -> bool:
    """No desk declares ``queue`` and no task is in it (without config/queues.yaml any name is a queue)."""
    if queue in declared or queue == SUPERVISOR_QUEUE:
        return False
    return session.exec(select(AgentTask.id).where(AgentTask.queue == queue).limit(1)).first() is None


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
        return [task_row(t, name, tier, assignee, now) for t, name, tier, assignee in session.exec(stmt)]
