"""The supervisor desk: backlog per queue, each agent's load and SLA figures, the team's worklist, a chart.

A supervisor with a team sees the queues that team works (``console.queues``: the same rule as
the agents' inbox) and the tasks of the team's agents; one without a team sees everything.
Every figure is a handful of grouped queries on the task indexes (status and due time,
assignee, queue, completion time), so a 100k-task backlog costs no more than a small one.

SLA figures, two ways, each said where it is shown:
- an agent's "met today / this week": of the tasks they closed since midnight / Monday, the share
  closed by their due time;
- the chart's compliance by day: of the tasks due that day (whose due time has passed), the share
  closed by their due time; a task still open after its due time counts as missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, func, or_, text
from sqlalchemy import select as sa_select
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col, select

from console import queues
from console.auth import CurrentUser
from console.i18n import DISPLAY_ZONE
from console.task_inbox import TaskRow, task_row
from console.task_rights import ACTIVE, SUPERVISOR_QUEUE, scope_for
from store.clock import as_utc, utcnow, zone
from store.db import session_scope
from store.models import ACTIVE_TASK_SQL, AgentTask, AppUser, Customer, TaskStatus

WORKLIST_PAGE = 50
CHART_DAYS = 14
STATES = ("pool", "assigned", "at_risk", "overdue")


@dataclass(frozen=True)
class QueueBacklog:
    queue: str
    pool: int  # open and nobody's
    assigned: int  # open or claimed by someone
    at_risk: int  # past the warning time, not yet overdue
    overdue: int
    oldest_due: datetime | None
    clock: str

    @property
    def total(self) -> int:
        return self.pool + self.assigned


@dataclass(frozen=True)
class AgentFigures:
    id: int
    name: str
    role: str
    on_shift: bool
    skills: tuple[str, ...]
    open: int
    claimed: int
    at_risk: int
    overdue: int
    done_today: int
    met_today: int
    done_week: int
    met_week: int
    team: str | None = None  # which queues the desk routes to them (config/queues.yaml)

    @property
    def load(self) -> int:
        return self.open + self.claimed

    @staticmethod
    def rate(met: int, done: int) -> float | None:
        return met / done if done else None


@dataclass(frozen=True)
class DayCompliance:
    day: date
    due: int
    met: int

    @property
    def rate(self) -> float | None:
        return self.met / self.due if self.due else None


@dataclass(frozen=True)
class Bar:
    """One day of the chart, in SVG units (the template draws it; see ``chart``)."""

    x: float
    y: float
    width: float
    height: float
    day: date
    rate: float | None
    due: int
    met: int
    below_target: bool


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    top: int
    bottom: int
    left: int
    bars: list[Bar]
    target: float
    target_y: float
    gridlines: list[tuple[float, int]]  # (y, percent)


@dataclass(frozen=True)
class WorkFilter:
    queue: str | None = None
    agent: int | None = None
    state: str | None = None  # one of STATES

    def query(self) -> dict[str, str]:
        out = {"queue": self.queue or "", "agent": str(self.agent) if self.agent is not None else "",
               "state": self.state or ""}
        return {k: v for k, v in out.items() if v}


@dataclass
class TeamView:
    members: list[AppUser]
    scope: queues.Scope

    @property
    def member_ids(self) -> list[int]:
        return [m.id for m in self.members if m.id is not None]


def local_midnight(now: datetime, days_back: int = 0) -> datetime:
    local = now.astimezone(zone(DISPLAY_ZONE))
    return datetime.combine(local.date() - timedelta(days=days_back), datetime.min.time(), tzinfo=local.tzinfo)


def week_start(now: datetime) -> datetime:
    return local_midnight(now, now.astimezone(zone(DISPLAY_ZONE)).weekday())


def _team(session: Session, user: CurrentUser) -> TeamView:
    stmt = select(AppUser).where(col(AppUser.role).in_(("agent", "supervisor")), col(AppUser.active) == True)  # noqa: E712
    if user.team is not None:
        stmt = stmt.where(AppUser.team == user.team)
    members = list(session.exec(stmt.order_by(col(AppUser.username))).all())
    return TeamView(members, scope_for(session, user))


def _queue_scope(user: CurrentUser, team: TeamView) -> list[ColumnElement[bool]]:
    """The team's queues (and the escalations), for the backlog and the chart."""
    conditions = team.scope.conditions()
    if user.team is None or not conditions:
        return []
    return [or_(col(AgentTask.queue) == SUPERVISOR_QUEUE, and_(*conditions))]


def _task_scope(user: CurrentUser, team: TeamView) -> list[ColumnElement[bool]]:
    """The team's tasks: its agents' and the pool of its queues."""
    if user.team is None:
        return []
    pool = and_(col(AgentTask.assignee_id).is_(None), *team.scope.conditions())
    return [or_(col(AgentTask.assignee_id).in_(team.member_ids), pool)]


def team_members(user: CurrentUser, *, db_url: str | None = None) -> list[AppUser]:
    with session_scope(db_url) as session:
        return _team(session, user).members


def backlog(user: CurrentUser, *, now: datetime | None = None, db_url: str | None = None) -> list[QueueBacklog]:
    """Active tasks per queue the team works, most at risk first."""
    now = now or utcnow()
    desk = queues.current()
    at_risk = and_(col(AgentTask.warn_at) <= now, col(AgentTask.due_at) >= now)
    with session_scope(db_url) as session:
        team = _team(session, user)
        # SQLAlchemy's select: sqlmodel's is typed for at most four columns.
        rows = session.execute(
            sa_select(col(AgentTask.queue),
                   func.sum(case((col(AgentTask.assignee_id).is_(None), 1), else_=0)),
                   func.count(),
                   func.sum(case((at_risk, 1), else_=0)),
                   func.sum(case((col(AgentTask.due_at) < now, 1), else_=0)),
                   func.min(col(AgentTask.due_at)))
            # The active tasks stated literally, so that their partial index (migration 0018) serves the sums:
            # as bound parameters SQLite read every task ever written, the closed ones too.
            .where(text(ACTIVE_TASK_SQL), *_queue_scope(user, team))
            .group_by(col(AgentTask.queue))
        ).all()
    out = [QueueBacklog(q, int(pool or 0), int(total) - int(pool or 0), int(risk or 0), int(late or 0),
                        as_utc(oldest) if oldest else None, desk.queue(q).clock)
           for q, pool, total, risk, late, oldest in rows]
    out.sort(key=lambda b: (-b.overdue, -b.at_risk, -b.total, b.queue))
    return out


def agent_figures(user: CurrentUser, *, now: datetime | None = None, db_url: str | None = None) -> list[AgentFigures]:
    now = now or utcnow()
    today, monday = local_midnight(now), week_start(now)
    with session_scope(db_url) as session:
        team = _team(session, user)
        ids = team.member_ids
        if not ids:
            return []
        mine = col(AgentTask.assignee_id).in_(ids)
        active: dict[tuple[int, str], int] = {
            (uid, status): int(n) for uid, status, n in session.exec(
                select(AgentTask.assignee_id, AgentTask.status, func.count())
                .where(mine, col(AgentTask.status).in_(ACTIVE))
                .group_by(col(AgentTask.assignee_id), col(AgentTask.status))) if uid is not None}
        late: dict[int, tuple[int, int]] = {
            uid: (int(r or 0), int(o or 0)) for uid, r, o in session.exec(
                select(AgentTask.assignee_id,
                       func.sum(case((and_(col(AgentTask.warn_at) <= now, col(AgentTask.due_at) >= now), 1),
                                     else_=0)),
                       func.sum(case((col(AgentTask.due_at) < now, 1), else_=0)))
                .where(mine, col(AgentTask.status).in_(ACTIVE))
                .group_by(col(AgentTask.assignee_id))) if uid is not None}
        on_time = col(AgentTask.completed_at) <= col(AgentTask.due_at)
        since_today = col(AgentTask.completed_at) >= today
        done: dict[int, tuple[int, int, int, int]] = {
            uid: (int(dt or 0), int(mt or 0), int(dw or 0), int(mw or 0)) for uid, dt, mt, dw, mw in session.execute(
                sa_select(col(AgentTask.assignee_id),
                       func.sum(case((since_today, 1), else_=0)),
                       func.sum(case((and_(since_today, on_time), 1), else_=0)),
                       func.count(),
                       func.sum(case((on_time, 1), else_=0)))
                .where(mine, col(AgentTask.status) == TaskStatus.DONE, col(AgentTask.completed_at) >= monday)
                .group_by(col(AgentTask.assignee_id))) if uid is not None}
        out: list[AgentFigures] = []
        for m in team.members:
            assert m.id is not None
            risk, overdue = late.get(m.id, (0, 0))
            dt, mt, dw, mw = done.get(m.id, (0, 0, 0, 0))
            out.append(AgentFigures(m.id, m.display_name or m.username, m.role, m.on_shift, tuple(m.skills or ()),
                                    active.get((m.id, TaskStatus.OPEN), 0), active.get((m.id, TaskStatus.CLAIMED), 0),
                                    risk, overdue, dt, mt, dw, mw, m.team))
    return out


def compliance_by_day(user: CurrentUser, *, now: datetime | None = None, days: int = CHART_DAYS,
                      db_url: str | None = None) -> list[DayCompliance]:
    """Per day, oldest first: tasks due that day whose due time has passed, and how many were closed in time."""
    now = now or utcnow()
    out: list[DayCompliance] = []
    counted = (TaskStatus.OPEN, TaskStatus.CLAIMED, TaskStatus.DONE)
    met = and_(col(AgentTask.status) == TaskStatus.DONE, col(AgentTask.completed_at) <= col(AgentTask.due_at))
    with session_scope(db_url) as session:
        team = _team(session, user)
        scope = _queue_scope(user, team)
        for back in range(days - 1, -1, -1):
            start = local_midnight(now, back)
            end = min(local_midnight(now, back - 1), now)
            # One range of the (status, due_at) index per day.
            total, on_time = session.exec(
                select(func.count(), func.sum(case((met, 1), else_=0)))
                .where(col(AgentTask.status).in_(counted), col(AgentTask.due_at) >= start,
                       col(AgentTask.due_at) < end, *scope)
            ).one()
            out.append(DayCompliance(start.date(), int(total or 0), int(on_time or 0)))
    return out


def chart(days: list[DayCompliance], *, target: float = 0.9) -> Chart:
    """Bar geometry for the compliance chart (drawn as inline SVG by the page: nothing from a CDN)."""
    width, height, left, top, bottom = 720, 240, 44, 16, 40
    inner_w, inner_h = width - left - 8, height - top - bottom
    slot = inner_w / max(1, len(days))
    bars: list[Bar] = []
    for i, d in enumerate(days):
        rate = d.rate
        h = inner_h * (rate or 0.0)
        bars.append(Bar(round(left + i * slot + slot * 0.15, 1), round(top + inner_h - h, 1), round(slot * 0.7, 1),
                        round(h, 1), d.day, rate, d.due, d.met, rate is not None and rate < target))
    grid = [(round(top + inner_h * (1 - p / 100), 1), p) for p in (0, 25, 50, 75, 100)]
    return Chart(width, height, top, bottom, left, bars, target, round(top + inner_h * (1 - target), 1), grid)


def worklist(user: CurrentUser, filters: WorkFilter, *, now: datetime | None = None, page: int = 0,
             db_url: str | None = None) -> tuple[list[TaskRow], bool]:
    """The team's active tasks, most urgent first, narrowed by ``filters``; and whether a next page exists."""
    now = now or utcnow()
    where: list[ColumnElement[bool]] = [col(AgentTask.status).in_(ACTIVE)]
    if filters.queue:
        where.append(col(AgentTask.queue) == filters.queue)
    if filters.agent is not None:
        where.append(col(AgentTask.assignee_id) == filters.agent)
    if filters.state == "pool":
        where += [col(AgentTask.assignee_id).is_(None), col(AgentTask.status) == TaskStatus.OPEN]
    elif filters.state == "assigned":
        where.append(col(AgentTask.assignee_id).is_not(None))
    elif filters.state == "at_risk":
        where += [col(AgentTask.warn_at) <= now, col(AgentTask.due_at) >= now]
    elif filters.state == "overdue":
        where.append(col(AgentTask.due_at) < now)
    with session_scope(db_url) as session:
        team = _team(session, user)
        if filters.agent is not None and filters.agent not in team.member_ids:
            return [], False
        rows = session.exec(
            select(AgentTask, Customer.name, Customer.tier, AppUser.display_name)
            .join(Customer, col(Customer.id) == AgentTask.customer_id)
            .join(AppUser, col(AppUser.id) == AgentTask.assignee_id, isouter=True)
            .where(*where, *_task_scope(user, team))
            .order_by(col(AgentTask.due_at), col(AgentTask.id))
            .offset(page * WORKLIST_PAGE).limit(WORKLIST_PAGE + 1)
        ).all()
    shown = [task_row(t, name, tier, assignee, now) for t, name, tier, assignee in rows[:WORKLIST_PAGE]]
    return shown, len(rows) > WORKLIST_PAGE
