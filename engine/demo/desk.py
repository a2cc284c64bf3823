"""The demo's contact-centre desk: agents and a supervisor working their tasks through ``console.tasks``.

Tasks are taken mostly inside their SLA window and during the shift, a share of them late; an
outcome is drawn per queue, a renewal call sets the customer's renewal intent in the world, and
a reached customer sometimes answers the post-call CSAT survey.
"""

from __future__ import annotations

import logging
import random
import secrets
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from engine.demo.world import DayStats, World, local_moment, local_zone

if TYPE_CHECKING:
    from console.auth import CurrentUser

log = logging.getLogger(__name__)

# Share of reached or resolved customers who answer the post-call CSAT survey.
CSAT_AFTER_TASK_RATE = 0.3
# Share of tasks an agent only gets to after the SLA has passed.
LATE_SHARE = 0.12

GENERIC_OUTCOMES = (("reached", 54), ("resolved", 12), ("no_answer", 20), ("call_back", 8), ("wrong_number", 4),
                    ("complaint_raised", 2))
COMPLAINT_OUTCOMES = (("resolved", 75), ("reached", 20), ("no_answer", 5))
RENEWAL_OUTCOMES = (("renewal_yes", 55), ("renewal_no", 15), ("no_answer", 20), ("call_back", 10))
SUPERVISOR_OUTCOMES = (("resolved", 70), ("reached", 30))
NOTES = {
    "reached": "已联系客户，介绍权益（演示）", "resolved": "问题已解决（演示）",
    "no_answer": "无人接听（演示）", "call_back": "客户约定回电时间（演示）",
    "wrong_number": "号码有误（演示）", "complaint_raised": "客户表达不满（演示）",
    "renewal_yes": "客户确认续保（演示）", "renewal_no": "客户暂不续保（演示）",
}


SHIFT_START, SHIFT_END = time(8, 30), time(20, 30)  # when the agents work (the desk's last round)

# The floor, in the order agents are hired (a small book gets the first few): team and skills, as
# config/queues.yaml routes by them. The busiest queues come first; the third agent has no team and
# works whatever no team present works. A queue no present team works is open to every agent, so
# a small floor still leaves nothing unseen; health bookings need the health licence whatever the size.
ROSTER: tuple[tuple[str | None, tuple[str, ...]], ...] = (
    ("gold_callback", ("lang:zh-CN",)),
    ("complaints", ("lang:zh-CN", "lang:en")),
    (None, ("lang:zh-CN", "lang:en", "licence:health", "licence:life", "product:health", "product:life")),
    ("claims", ("lang:zh-CN", "product:health", "product:motor", "product:accident")),
    ("renewal", ("lang:zh-CN", "licence:life", "product:life")),
    ("platinum_callback", ("lang:zh-CN", "lang:en")),
    ("health_booking", ("lang:zh-CN", "licence:health", "product:health")),
    ("retention", ("lang:zh-CN",)),
    ("advisors", ("lang:zh-CN", "lang:en", "licence:health", "licence:life")),
    ("complaints", ("lang:zh-CN",)),
    ("gold_callback", ("lang:zh-CN", "lang:en")),
    ("policy_review", ("lang:zh-CN", "product:property", "product:motor")),
)


def _within_shift(when: datetime, created: datetime) -> datetime:
    """An agent who means to be on time and whose moment falls at night does it in the last round
    of the evening before (when the task already existed then), else in the first of the morning."""
    local = when.astimezone(local_zone())
    if SHIFT_START <= local.time() <= SHIFT_END:
        return when
    evening_day = local.date() if local.time() > SHIFT_END else local.date() - timedelta(days=1)
    evening = local_moment(evening_day, SHIFT_END)
    if evening >= created:
        return evening
    return local_moment(evening_day + timedelta(days=1), SHIFT_START)


class Desk:
    """A few agents and a supervisor working their tasks through ``console.tasks``, some of them late."""

    def __init__(self, db_url: str, world: World, rng: random.Random, agents: int) -> None:
        from console.auth import CurrentUser, create_user
        from store.db import session_scope

        self.db_url = db_url
        self.world = world
        self.rng = rng
        self.handle_at: dict[int, datetime] = {}
        with session_scope(db_url) as session:
            # Passwords nobody needs: the demo acts through the task service, not the login page.
            made = []
            for i in range(1, agents + 1):
                team, skills = ROSTER[(i - 1) % len(ROSTER)]
                agent = create_user(session, f"agent{i:02d}", secrets.token_urlsafe(16), "agent",
                                    display_name=f"坐席{i:02d}", team=team)
                agent.skills = list(skills)
                session.add(agent)
                made.append(agent)
            session.flush()
            boss = create_user(session, "supervisor01", secrets.token_urlsafe(16), "supervisor", display_name="主管01")
            self.agents = [CurrentUser.of(u) for u in made]
            self.supervisor = CurrentUser.of(boss)
        self.users = {u.id: u for u in [*self.agents, self.supervisor]}
        self._next_agent = 0

    def _when(self, created: datetime, due: datetime) -> datetime:
        """When the agent gets to a task: mostly inside its SLA window, ``LATE_SHARE`` after it."""
        window = max(timedelta(minutes=30), due - created)
        if self.rng.random() < LATE_SHARE:
            return created + window * self.rng.uniform(1.05, 2.0)
        return _within_shift(created + window * self.rng.uniform(0.02, 0.85), created)

    def _outcome(self, queue: str, journey: str) -> str:
        """An outcome drawn from the demo's rates, among those the task's queue offers (an agent can pick
        no other: the generic rates include ``resolved``, which callback queues do not offer)."""
        from console import queues
        from console.tasks import SUPERVISOR_QUEUE

        table: tuple[tuple[str, int], ...]
        if queue == SUPERVISOR_QUEUE:
            table = SUPERVISOR_OUTCOMES
        elif "complaint" in queue or "complaint" in journey:
            table = COMPLAINT_OUTCOMES
        elif "renewal" in queue or "renewal" in journey:
            table = RENEWAL_OUTCOMES
        else:
            table = GENERIC_OUTCOMES
        offered = queues.outcomes_of(queue)
        table = tuple((o, w) for o, w in table if o in offered) or tuple((o, 1) for o in offered)
        return self.rng.choices([o for o, _ in table], weights=[w for _, w in table])[0]

    def _taker(self, task_id: int) -> CurrentUser | None:
        from console.tasks import scope_for
        from store.db import session_scope
        from store.models import AgentTask, Customer

        with session_scope(self.db_url) as session:
            task = session.get(AgentTask, task_id)
            customer = session.get(Customer, task.customer_id) if task is not None else None
            if task is None or customer is None:
                return None
            for turn in range(len(self.agents)):
                agent = self.agents[(self._next_agent + turn) % len(self.agents)]
                if scope_for(session, agent).allows(task, customer):
                    self._next_agent += turn + 1
                    return agent
        return None

    def work(self, at: datetime, stats: DayStats) -> None:
        import sqlalchemy as sa
        from sqlmodel import col, select

        from console.assignment import assign_open_tasks, escalate_overdue
        from console.tasks import ACTIVE, SUPERVISOR_QUEUE, TaskError, claim, complete
        from store.clock import as_utc
        from store.db import session_scope
        from store.models import AgentTask, Customer

        assign_open_tasks(at, db_url=self.db_url)
        escalate_overdue(at, db_url=self.db_url)
        with session_scope(self.db_url) as session:
            rows = session.execute(
                sa.select(col(AgentTask.id), col(AgentTask.created_at), col(AgentTask.due_at), col(AgentTask.queue),
                          col(AgentTask.journey_id), col(AgentTask.assignee_id), col(AgentTask.status),
                          col(Customer.external_id))
                .join(Customer, col(Customer.id) == AgentTask.customer_id)
                .where(col(AgentTask.status).in_(ACTIVE)).order_by(col(AgentTask.due_at), col(AgentTask.id))
            ).all()
        for task_id, created, due, queue, journey, assignee_id, status, external_id in rows:
            assert task_id is not None
            created, due = as_utc(created), as_utc(due)
            when = self.handle_at.setdefault(task_id, self._when(created, due))
            if when > at:
                continue
            if queue == SUPERVISOR_QUEUE:
                user = self.users.get(assignee_id or -1, self.supervisor)
            elif assignee_id in self.users:
                user = self.users[assignee_id]
            else:
                # Left in the pool (every able agent at their cap): the next agent whose team and
                # skills let them take it, as the inbox would offer it.
                taker = self._taker(task_id)
                if taker is None:
                    continue
                user = taker
            outcome = self._outcome(queue, journey)
            callback_at = None
            if outcome == "call_back":
                callback_at = at + timedelta(days=self.rng.randint(1, 3))
            try:
                if status == "open":
                    claim(user, task_id, now=at, db_url=self.db_url)
                complete(user, task_id, outcome, notes=NOTES[outcome], callback_at=callback_at, now=at,
                         db_url=self.db_url)
            except TaskError as exc:  # e.g. escalated and reassigned meanwhile: the next tick sees it again
                log.info("task %s not completed: %s", task_id, exc.code)
                continue
            stats.tasks_done += 1
            if at > due:
                stats.tasks_late += 1
            if outcome in ("renewal_yes", "renewal_no"):
                with session_scope(self.db_url) as session:
                    customer_id = session.exec(select(AgentTask.customer_id).where(AgentTask.id == task_id)).one()
                self.world.renewal_intent[customer_id] = outcome == "renewal_yes"
            if outcome in ("reached", "resolved") and self.rng.random() < CSAT_AFTER_TASK_RATE:
                # The post-call satisfaction survey comes back an hour or two later.
                score = self.rng.choices((1, 2, 3, 4, 5), weights=(4, 5, 9, 32, 50))[0]
                self.world.later(at + timedelta(minutes=self.rng.randint(30, 180)), "survey.answered", external_id,
                                 {"survey": "csat_callback", "csat": score}, f"demo:csat:{task_id}")
