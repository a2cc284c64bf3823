"""Who works which task: dedicated advisors, round-robin or least-loaded agents, and SLA escalation.

- A diamond customer's tasks go to the customer's dedicated advisor (``Customer.advisor_id``).
- Other tasks go to active, on-shift agents, by ``JOURNEYS_ASSIGNMENT`` = ``least_loaded``
  (default), ``round_robin`` or ``none`` (everything stays in the claimable queue), among the
  agents who may take them (``config/queues.yaml``): agents of the teams that work the queue
  (every agent for a queue no active team works), then agents without a team; and of those, only
  the ones with every skill the task needs (its queue's, its task type's, the customer's language
  where the queue asks for it). Nobody is pushed more than ``JOURNEYS_ASSIGNMENT_MAX_PER_AGENT``
  active tasks; the rest stay claimable.
- ``escalate_overdue(now)`` first gives tasks written without SLA times theirs (the planner
  writes them on the queue's clock; rows from before it did are left) and warns about tasks close
  to their SLA (``console.sla``), then flags tasks past their SLA and opens a task in
  the supervisor queue for each, once, however often it is called.
- ``run_desk(now)`` does all of it in order; the console runs it on a timer while it serves
  (``console.desk_schedule``, every JOURNEYS_DESK_EVERY seconds).

Both functions are safe to run from several schedulers at once: every change is a
conditional UPDATE that only one caller can win.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from console import queues, sla
from console.config import assignment_strategy, max_open_per_agent
from console.desk_batches import in_batches
from console.events_bridge import emit_many
from console.task_rights import ACTIVE, SUPERVISOR_QUEUE
from engine.loop.events import Incoming
from store.clock import utcnow
from store.db import session_scope
from store.models import AgentTask, AppUser, Customer, KeyValue, TaskStatus

log = logging.getLogger(__name__)

ROUND_ROBIN_KEY = "console.assignment.round_robin"
ESCALATION_SLA = timedelta(hours=2)
BATCH = 500


def _loads(session: Session, user_ids: list[int]) -> dict[int, int]:
    if not user_ids:
        return {}
    rows = session.exec(
        select(AgentTask.assignee_id, func.count())
        .where(col(AgentTask.assignee_id).in_(user_ids), col(AgentTask.status).in_(ACTIVE))
        .group_by(col(AgentTask.assignee_id))
    ).all()
    loads = dict.fromkeys(user_ids, 0)
    for uid, n in rows:
        if uid is not None:
            loads[uid] = int(n)
    return loads


def _assign(session: Session, task_id: int, user_id: int) -> bool:
    result = session.connection().execute(
        update(AgentTask)
        .where(col(AgentTask.id) == task_id, col(AgentTask.assignee_id).is_(None),
               col(AgentTask.status) == TaskStatus.OPEN)
        .values(assignee_id=user_id)
    )
    return bool(result.rowcount == 1)


def assign_open_tasks(now: datetime | None = None, *, strategy: str | None = None, limit: int = 1000,
                      db_url: str | None = None) -> int:
    """Assign up to ``limit`` unassigned open tasks (most urgent first); returns how many were assigned."""
    now = now or utcnow()
    strategy = strategy or assignment_strategy()
    cap = max_open_per_agent()
    # Most urgent first needs the true due times: rows written without them get theirs first.
    sla.settle_new_tasks(now, db_url=db_url)
    desk = queues.current()
    assigned = 0
    with session_scope(db_url) as session:
        agents = session.exec(
            select(AppUser).where(AppUser.role == "agent", col(AppUser.active) == True, col(AppUser.on_shift) == True)  # noqa: E712
            .order_by(col(AppUser.id))
        ).all()
        agent_ids = [a.id for a in agents if a.id is not None]
        teams = {a.id: a.team for a in agents}
        skills = {a.id: queues.effective_skills(a.skills or ()) for a in agents}
        worked_by = queues.active_agent_teams(session)
        loads = _loads(session, agent_ids)
        cursor_row = session.get(KeyValue, ROUND_ROBIN_KEY)
        last_id = int(cursor_row.value.get("last_user_id", 0)) if cursor_row else 0

        pending = session.exec(
            select(AgentTask, Customer.tier, Customer.advisor_id, Customer.locale)
            .join(Customer, col(Customer.id) == AgentTask.customer_id)
            .where(col(AgentTask.assignee_id).is_(None), col(AgentTask.status) == TaskStatus.OPEN,
                   col(AgentTask.queue) != SUPERVISOR_QUEUE)
            .order_by(col(AgentTask.due_at), col(AgentTask.id))
            .limit(limit)
        ).all()
        advisors_active: dict[int, bool] = {}
        for task, tier, advisor_id, locale in pending:
            task_id = task.id
            assert task_id is not None
            if tier == "diamond" and advisor_id is not None:
                if advisor_id not in advisors_active:
                    advisor = session.get(AppUser, advisor_id)
                    advisors_active[advisor_id] = bool(advisor and advisor.active)
                # The dedicated advisor owns the relationship: no load cap, the SLA escalation watches it.
                if advisors_active[advisor_id]:
                    if _assign(session, task_id, advisor_id):
                        assigned += 1
                    continue
            if strategy == "none" or not agent_ids:
                continue
            serving = set(desk.queue(task.queue).teams)
            orphan = not (serving & worked_by)
            needed = desk.requires(task, locale)
            able = [uid for uid in agent_ids if loads[uid] < cap and needed <= skills[uid]]
            # The queue's own teams first, then agents without a team (who work every queue).
            choice = [uid for uid in able if orphan or teams.get(uid) in serving] or \
                [uid for uid in able if teams.get(uid) is None]
            if not choice:
                continue
            if strategy == "round_robin":
                after = [uid for uid in choice if uid > last_id]
                chosen = after[0] if after else choice[0]
            else:
                chosen = min(choice, key=lambda uid: (loads[uid], uid))
            if _assign(session, task_id, chosen):
                loads[chosen] += 1
                last_id = chosen
                assigned += 1
        if strategy == "round_robin":
            if cursor_row is None:
                session.add(KeyValue(key=ROUND_ROBIN_KEY, value={"last_user_id": last_id}, updated_at=now))
            else:
                cursor_row.value = {"last_user_id": last_id}
                cursor_row.updated_at = now
                session.add(cursor_row)
    if assigned:
        log.info("assigned %d task(s) (%s)", assigned, strategy)
    return assigned


def _supervisor_for(session: Session, teams: list[str], loads_cache: dict[int, int]) -> int | None:
    stmt = select(AppUser).where(AppUser.role == "supervisor", col(AppUser.active) == True,  # noqa: E712
                                 col(AppUser.on_shift) == True)  # noqa: E712
    supervisors = session.exec(stmt.order_by(col(AppUser.id))).all()
    same_team = next(([s for s in supervisors if s.team == team] for team in teams
                      if any(s.team == team for s in supervisors)), [])
    # A team's own supervisor first; else a supervisor without a team (who oversees all); else the queue.
    candidates = same_team or [s for s in supervisors if s.team is None]
    ids = [s.id for s in candidates if s.id is not None]
    if not ids:
        return None
    missing = [i for i in ids if i not in loads_cache]
    loads_cache.update(_loads(session, missing))
    return min(ids, key=lambda i: (loads_cache[i], i))


def escalate_overdue(now: datetime | None = None, *, db_url: str | None = None) -> int:
    """Flag every active task past its due time and open one supervisor task for it; idempotent.

    Tasks written without SLA times get theirs by their queue's clock first (an old business-hours
    row with a wall-clock due time is not escalated at night), and tasks close to their SLA are warned about.
    """
    now = now or utcnow()
    sla.settle_new_tasks(now, db_url=db_url)
    sla.warn_at_risk(now, db_url=db_url)
    desk = queues.current()

    def batch() -> tuple[int, int]:
        emits: list[tuple[str, int, str]] = []
        with session_scope(db_url) as session:
            rows = session.exec(
                select(AgentTask, Customer.external_id, AppUser.team)
                .join(Customer, col(Customer.id) == AgentTask.customer_id)
                .join(AppUser, col(AppUser.id) == AgentTask.assignee_id, isouter=True)
                .where(col(AgentTask.status).in_(ACTIVE), col(AgentTask.due_at) < now,
                       col(AgentTask.escalated) == False,  # noqa: E712
                       col(AgentTask.queue) != SUPERVISOR_QUEUE)
                .order_by(col(AgentTask.due_at), col(AgentTask.id))
                .limit(BATCH)
            ).all()
            if not rows:
                return 0, 0
            loads: dict[int, int] = {}
            for task, external_id, team in rows:
                assert task.id is not None
                won = session.connection().execute(
                    update(AgentTask).where(col(AgentTask.id) == task.id, col(AgentTask.escalated) == False)  # noqa: E712
                    .values(escalated=True)
                ).rowcount == 1
                if not won:
                    continue
                # The assignee's team's supervisor; for a task nobody had, one of the queue's teams'.
                supervisor_id = _supervisor_for(session, [team] if team else list(desk.queue(task.queue).teams),
                                                loads)
                due, warn = sla.follow_up_times(SUPERVISOR_QUEUE, now, ESCALATION_SLA)
                session.add(AgentTask(
                    key=f"escalation:{task.id}", customer_id=task.customer_id, enrollment_id=task.enrollment_id,
                    journey_id=task.journey_id, journey_version=task.journey_version, step_id=task.step_id,
                    occurrence=task.occurrence, queue=SUPERVISOR_QUEUE, priority=1, script=task.script,
                    assignee_id=supervisor_id, status=TaskStatus.OPEN, due_at=due, warn_at=warn,
                    created_at=now, attempt=1, parent_task_id=task.id, event_id=task.event_id,
                ))
                if supervisor_id is not None:
                    loads[supervisor_id] = loads.get(supervisor_id, 0) + 1
                emits.append((external_id, task.id, task.queue))
        emit_many([Incoming("task.escalated", external_id, {"task_id": task_id, "queue": queue},
                            f"task.escalated:{task_id}", now) for external_id, task_id, queue in emits], db_url)
        return len(rows), len(emits)

    return in_batches(batch, BATCH, log, "escalated %d overdue task(s)")


def run_desk(now: datetime | None = None, *, db_url: str | None = None) -> dict[str, int]:
    """One round of the desk's background work, in order: SLA of rows written without it, assignment,
    warnings, escalation (the planner writes new tasks' due and warning times on their queue's clock)."""
    now = now or utcnow()
    return {
        "settled": sla.settle_new_tasks(now, db_url=db_url),
        "assigned": assign_open_tasks(now, db_url=db_url),
        "warned": sla.warn_at_risk(now, db_url=db_url),
        "escalated": escalate_overdue(now, db_url=db_url),
    }
