"""The desk's queue declarations (``config/queues.yaml``): who works each queue, its outcomes, clock, skills.

Kept in the language layer because the planner needs a queue's clock when it plans a task
(``engine.language.sla_clock``), and the console needs the rest; ``console.queues`` adds who
may see which tasks.

``current()`` is the file in force, re-read when it changes (a broken edit is logged and the last
good version stays in force; ``check()`` refuses a broken file at the console's start, as
``journeys validate`` reports it at its lines). Without the file every queue has the built-in
defaults: all outcomes, a wall clock, a warning at 80%.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.language.locales import fold_locale
from engine.language.paths import config_dir, journey_files, journeys_dir
from engine.language.problems import Problem, display_path, load_config, load_document
from engine.language.settings_checks import dropped_queue_problems, unknown_task_types
from engine.language.settings_model import SKILL_LANGUAGES, BusinessHours, QueuesConfig
from engine.language.validation import journey_steps
from engine.language.validation_cache import validate_cached

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


class TaskLike(Protocol):
    """What ``Desk.requires`` reads of a task (the store's ``AgentTask`` has it)."""

    queue: str
    journey_id: str
    step_id: str


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
                tuple(self.config.outcomes_of(name)),
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

    def requires(self, task: TaskLike, customer_locale: str | None) -> frozenset[str]:
        """Every skill one task needs: its queue's, its task type's and the customer's language if asked."""
        queue = self.queue(task.queue)
        needed = set(queue.requires) | set(self.task_requires(task.journey_id, task.step_id))
        if queue.match_language:
            needed.add(f"lang:{customer_language(customer_locale)}")
        return frozenset(needed)


def customer_language(locale: str | None) -> str:
    """The skill language for a customer's locale (``en-US`` → ``en``, anything unknown → zh-CN)."""
    return fold_locale(locale, SKILL_LANGUAGES, DEFAULT_LANGUAGE)


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
    config, problems = load_config(QueuesConfig, path or queues_path(), optional=True)
    if config is None:
        return None, problems
    return Desk(config), []


def task_type_problems(config: QueuesConfig, path: Path) -> list[Problem]:
    """Where the queues file ``config`` (read from ``path``) names in its task types a journey or step that
    no journey file holds, as validate refuses it (``engine.language.settings_checks.unknown_task_types``);
    nothing when the journeys folder holds no file (validate checks no name then either)."""
    if not config.task_types:
        return []
    if not journey_files([journeys_dir()]):
        return []
    # The validation cached on disk (not the registry's, which reads this desk): this runs only when
    # the file changed or is submitted.
    journeys = journey_steps(validate_cached([journeys_dir()]).journeys)
    _, doc, _ = load_document(path)
    return unknown_task_types(config, doc, display_path(path), journeys)


def check() -> None:
    """Raise ``QueuesConfigError`` (every problem at its line) when the file in force is broken."""
    desk, problems = load()
    if desk is None:
        raise QueuesConfigError(problems)


def current(path: Path | None = None) -> Desk:
    """The desk of ``path`` (default: ``config/queues.yaml``) in force: re-read when the file changes."""
    path = path or queues_path()
    key = str(path)
    stamp = _stamp(path)
    with _lock:
        cached = _loaded.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    desk, problems = load(path)
    if desk is not None and cached is not None and path.is_file():
        # A queue dropped while the tier settings still send their warnings to it: refused as
        # validate refuses it (engine.language.settings_checks), and the desk in force stays.
        problems = [*dropped_queue_problems(path.parent / "tiers.yaml", cached[1].declared, desk.declared),
                    *task_type_problems(desk.config, path)]
        desk = desk if not problems else None
    if desk is None:
        if cached is not None:
            # Ops saved a broken edit: keep working with the last good file, loudly.
            log.error("%s has problems, the previous version stays in force:\n%s",
                      path.name, "\n".join(str(p) for p in problems))
            with _lock:
                _loaded[key] = (stamp, cached[1])
            return cached[1]
        raise QueuesConfigError(problems)
    with _lock:
        _loaded[key] = (stamp, desk)
    return desk


def declared_queues(path: Path | None = None) -> tuple[str, ...] | None:
    """The queues a settings file may name (``engine.language.settings_checks``): those of the desk in
    force; None without the file (every name is a queue with the defaults) or while it is broken with no
    good version before it (validate reports it, and checks no name against it)."""
    path = path or queues_path()
    if not path.is_file():
        return None
    try:
        return tuple(current(path).declared)
    except QueuesConfigError:
        return None
