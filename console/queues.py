"""The desk's queues (``config/queues.yaml``): who works each, its outcomes, its SLA clock, its skills.

``current()`` is the file in force, re-read when it changes (a broken edit is logged and the last
good version stays in force; ``check()`` refuses a broken file at the console's start, as
``journeys validate`` reports it at its lines). Without the file every queue has the built-in
defaults: all outcomes, a wall clock, a warning at 80%.

``scope_of`` turns a user, their team and skills and the active teams into the set of tasks they
may see in the pool; ``Scope.conditions`` says it in SQL for the inbox (indexed by queue, status
and due time) and ``Scope.allows`` in Python for one task, so the list and the task page agree.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, false, not_, or_
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col, select

from engine.language.paths import config_dir
from engine.language.problems import Problem, load_config
from engine.language.settings_model import OUTCOME_CODES, SKILL_LANGUAGES, BusinessHours, QueuesConfig
from store.models import AgentTask, AppUser, Customer

log = logging.getLogger(__name__)

SUPERVISOR_QUEUE = "supervisor"
# The language an agent speaks when their skills name none: the service centre's own.
DEFAULT_LANGUAGE = "zh-CN"


def queues_path() -> Path:
    return config_dir() / "queues.yaml"


@dataclass(frozen=True)
class Queue:
    name: str
    teams: tuple[str, ...]
    outcomes: tuple[str, ...]
    clock: str
    warn_at: float
    requires: frozenset[str]
    match_language: bool
    declared: bool


class Desk:
    """The queue declarations in force, with the defaults applied."""

    def __init__(self, config: QueuesConfig | None = None) -> None:
        self.config = config or QueuesConfig()
        self._cache: dict[str, Queue] = {}

    @property
    def business_hours(self) -> BusinessHours:
        return self.config.business_hours

    @property
    def declared(self) -> list[str]:
        return sorted(self.config.queues)

    def queue(self, name: str) -> Queue:
        found = self._cache.get(name)
        if found is not None:
            return found
        d = self.config.defaults
        decl = self.config.queues.get(name)
        if decl is None:
            queue = Queue(name, (name,), tuple(d.outcomes), d.clock, d.warn_at, frozenset(d.requires),
                          d.match_language, False)
        else:
            queue = Queue(
                name, tuple(decl.teams or [name]),
                tuple(decl.outcomes if decl.outcomes is not None else d.outcomes),
                decl.clock or d.clock, decl.warn_at if decl.warn_at is not None else d.warn_at,
                frozenset(decl.requires if decl.requires is not None else d.requires),
                decl.match_language if decl.match_language is not None else d.match_language, True)
        self._cache[name] = queue
        return queue

    def task_requires(self, journey_id: str, step_id: str) -> frozenset[str]:
        """Skills the tasks of this journey step need on top of their queue's."""
        out: set[str] = set()
        for key in (journey_id, f"{journey_id}/{step_id}"):
            decl = self.config.task_types.get(key)
            if decl is not None:
                out |= set(decl.requires)
        return frozenset(out)

    def requires(self, task: AgentTask, customer_locale: str | None) -> frozenset[str]:
        """Every skill one task needs: its queue's, its task type's and the customer's language if asked."""
        queue = self.queue(task.queue)
        needed = set(queue.requires) | set(self.task_requires(task.journey_id, task.step_id))
        if queue.match_language:
            needed.add(f"lang:{customer_language(customer_locale)}")
        return frozenset(needed)


def customer_language(locale: str | None) -> str:
    """The skill language for a customer's locale (``en-US`` → ``en``, anything unknown → zh-CN)."""
    if not locale:
        return DEFAULT_LANGUAGE
    norm = locale.replace("_", "-").lower()
    for lang in SKILL_LANGUAGES:
        if norm == lang.lower() or norm.split("-")[0] == lang.lower().split("-")[0]:
            return lang
    return DEFAULT_LANGUAGE


def languages_of(skills: Iterable[str]) -> frozenset[str]:
    spoken = {s.split(":", 1)[1] for s in skills if s.startswith("lang:")}
    return frozenset(spoken or {DEFAULT_LANGUAGE})


def effective_skills(skills: Iterable[str]) -> frozenset[str]:
    """An agent's skills, with the default language when they list none."""
    own = set(skills)
    return frozenset(own | {f"lang:{lang}" for lang in languages_of(own)})


# --- the file in force -------------------------------------------------------------------------


class QueuesConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


_lock = threading.Lock()
_loaded: dict[str, tuple[tuple[int, int] | None, Desk]] = {}


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def load(path: Path | None = None) -> tuple[Desk | None, list[Problem]]:
    """The desk of ``path`` (default: ``config/queues.yaml``), or the problems that stop it; no file: defaults."""
    path = path or queues_path()
    if not path.is_file():
        return Desk(), []
    config, problems = load_config(QueuesConfig, path)
    if config is None:
        return None, problems
    return Desk(config), []


def check() -> None:
    """Raise ``QueuesConfigError`` (every problem at its line) when the file in force is broken."""
    desk, problems = load()
    if desk is None:
        raise QueuesConfigError(problems)


def current() -> Desk:
    path = queues_path()
    key = str(path)
    stamp = _stamp(path)
    with _lock:
        cached = _loaded.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    desk, problems = load(path)
    if desk is None:
        if cached is not None:
            # Ops saved a broken edit: keep working with the last good file, loudly.
            log.error("config/queues.yaml has problems, the previous version stays in force:\n%s",
                      "\n".join(str(p) for p in problems))
            with _lock:
                _loaded[key] = (stamp, cached[1])
            return cached[1]
        raise QueuesConfigError(problems)
    with _lock:
        _loaded[key] = (stamp, desk)
    return desk


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
