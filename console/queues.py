"""Who sees which tasks of the desk's queues, on top of the queue declarations.

The declarations themselves (``config/queues.yaml``: teams, outcomes, SLA clock, skills) live in
``engine.language.queue_config``, where the planner reads a queue's clock too; their names are
re-exported here for the console.

``scope_of`` turns a user, their team and skills and the active teams into the set of tasks they
may see in the pool; ``Scope.conditions`` says it in SQL for the inbox (indexed by queue, status
and due time) and ``Scope.allows`` in Python for one task, so the list and the task page agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import and_, false, not_, or_
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col, select

from engine.language.queue_config import (
    DEFAULT_LANGUAGE,
    SUPERVISOR_QUEUE,
    Desk,
    Queue,
    QueuesConfigError,
    check,
    current,
    customer_language,
    effective_skills,
    languages_of,
    load,
    queues_path,
)
from engine.language.settings_model import OUTCOME_CODES, SKILL_LANGUAGES
from store.models import AgentTask, AppUser, Customer

__all__ = [
    "DEFAULT_LANGUAGE", "SUPERVISOR_QUEUE", "Desk", "Queue", "QueuesConfigError", "Scope", "active_agent_teams",
    "check", "current", "customer_language", "effective_skills", "inactive_user_ids", "languages_of", "load",
    "outcomes_of", "queues_path", "scope_of",
]


# --- who sees which tasks in the pool ----------------------------------------------------------


def active_agent_teams(session: Session) -> frozenset[str]:
    rows = session.exec(
        select(AppUser.team).where(AppUser.role == "agent", col(AppUser.active) == True,  # noqa: E712
                                   col(AppUser.team).is_not(None)).distinct()
    ).all()
    return frozenset(t for t in rows if t)


def inactive_user_ids(session: Session) -> frozenset[int]:
    return frozenset(i for i in session.exec(
        select(AppUser.id).where(col(AppUser.active) == False)).all() if i is not None)  # noqa: E712


@dataclass(frozen=True)
class Scope:
    """The pool tasks one user may see: by queue (team and skills), task type, language and advisor.

    ``hidden`` lists the queues out of reach; when the defaults themselves need a skill the user
    lacks, every undeclared queue is out of reach too and ``only`` lists the queues that are not.
    """

    user_id: int
    hidden: frozenset[str] = frozenset()
    only: frozenset[str] | None = None
    hidden_journeys: frozenset[str] = frozenset()
    hidden_steps: frozenset[tuple[str, str]] = frozenset()
    # Language matching: the queues that ask for it (or, when the defaults do, those that do not).
    language_queues: frozenset[str] = frozenset()
    language_by_default: bool = False
    languages: frozenset[str] = frozenset({DEFAULT_LANGUAGE})
    inactive_advisors: frozenset[int] = frozenset()
    check_advisor: bool = True
    skills: frozenset[str] = field(default_factory=frozenset)

    def queue_visible(self, queue: str) -> bool:
        if self.only is not None:
            return queue in self.only
        return queue not in self.hidden

    def _language_ok(self, queue: str, locale: str | None) -> bool:
        asks = (queue not in self.language_queues) if self.language_by_default else (queue in self.language_queues)
        return not asks or customer_language(locale) in self.languages

    def allows(self, task: AgentTask, customer: Customer) -> bool:
        if not self.queue_visible(task.queue):
            return False
        if task.journey_id in self.hidden_journeys or (task.journey_id, task.step_id) in self.hidden_steps:
            return False
        if not self._language_ok(task.queue, customer.locale):
            return False
        return not (self.check_advisor and customer.tier == "diamond" and customer.advisor_id is not None
                    and customer.advisor_id != self.user_id and customer.advisor_id not in self.inactive_advisors)

    def conditions(self, *, queues: bool = True) -> list[ColumnElement[bool]]:
        """The same as ``allows``, for a query joining AgentTask and Customer (``queues=False``: without
        the test of the queue itself, for a query that names a visible queue)."""
        out: list[ColumnElement[bool]] = []
        if not queues:
            pass
        elif self.only is not None:
            out.append(col(AgentTask.queue).in_(sorted(self.only)) if self.only else false())
        elif self.hidden:
            out.append(col(AgentTask.queue).not_in(sorted(self.hidden)))
        if self.hidden_journeys:
            out.append(col(AgentTask.journey_id).not_in(sorted(self.hidden_journeys)))
        for journey_id, step_id in sorted(self.hidden_steps):
            out.append(not_(and_(col(AgentTask.journey_id) == journey_id, col(AgentTask.step_id) == step_id)))
        spoken = or_(*[col(Customer.locale).like(f"{lang.split('-')[0]}%") for lang in sorted(self.languages)])
        if DEFAULT_LANGUAGE in self.languages:
            # Customers without a locale, or with one we do not know, are served in the default language.
            known = [col(Customer.locale).like(f"{lang.split('-')[0]}%") for lang in SKILL_LANGUAGES]
            spoken = or_(spoken, col(Customer.locale).is_(None), not_(or_(*known)))
        if self.language_by_default:
            out.append(or_(col(AgentTask.queue).in_(sorted(self.language_queues)), spoken)
                       if self.language_queues else spoken)
        elif self.language_queues:
            out.append(or_(col(AgentTask.queue).not_in(sorted(self.language_queues)), spoken))
        if self.check_advisor:
            out.append(or_(
                col(Customer.tier).is_(None), col(Customer.tier) != "diamond", col(Customer.advisor_id).is_(None),
                col(Customer.advisor_id) == self.user_id,
                col(Customer.advisor_id).in_(sorted(self.inactive_advisors)) if self.inactive_advisors else false(),
            ))
        return out


def scope_of(session: Session, user_id: int, role: str, team: str | None, skills: Iterable[str],
             desk: Desk | None = None, *, teams: frozenset[str] | None = None) -> Scope:
    """What ``user`` may see in the pool (agents: by team and skills; supervisors: by team only)."""
    desk = desk or current()
    teams = active_agent_teams(session) if teams is None else teams
    own = effective_skills(skills)
    agent = role == "agent"

    def team_ok(queue: str) -> bool:
        serving = set(desk.queue(queue).teams)
        return team is None or team in serving or not (serving & teams)

    def skills_ok(needed: Iterable[str]) -> bool:
        return not agent or set(needed) <= own

    declared = desk.declared
    hidden = {q for q in declared if not (team_ok(q) and skills_ok(desk.queue(q).requires))}
    # Undeclared queues are worked by the team of their name: the other teams' names are out of reach.
    hidden |= {t for t in teams if t != team and t not in desk.config.queues} if team is not None else set()
    only: frozenset[str] | None = None
    if not skills_ok(desk.config.defaults.requires):
        only = frozenset(q for q in declared if q not in hidden)
    task_types = desk.config.task_types.items()
    hidden_journeys = frozenset(k for k, d in task_types if "/" not in k and not skills_ok(d.requires))
    hidden_steps = frozenset((k.split("/", 1)[0], k.split("/", 1)[1]) for k, d in task_types
                             if "/" in k and not skills_ok(d.requires))
    by_default = desk.config.defaults.match_language
    language_queues = frozenset(q for q in declared if desk.queue(q).match_language != by_default)
    return Scope(
        user_id, frozenset(hidden), only, hidden_journeys, hidden_steps,
        language_queues if agent else frozenset(), by_default and agent,
        languages_of(skills), inactive_user_ids(session) if agent else frozenset(), agent, own,
    )


def outcomes_of(queue: str, desk: Desk | None = None) -> tuple[str, ...]:
    offered = (desk or current()).queue(queue).outcomes
    return tuple(o for o in OUTCOME_CODES if o in offered)
