"""The checks a settings file passes to go in force, the same wherever it lands: ``journeys validate``,
the landing of ``config/tiers.yaml`` and ``config/delivery.yaml`` as versions for review (every run of
the service, planner and dispatcher, ``journeys review submit``, the console's review page), and their
reading straight from the file while no valid version is stored.

Beyond its own model a file may name what another declares: a tier's ``notify_queue`` must be a queue
of ``config/queues.yaml``. Only validate checked it; a file naming ``opz`` still landed, was approved,
and the tier review's warnings went to a queue no agent works.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from engine.language.authoring_checks import unknown_queue
from engine.language.problems import Problem, display_path, load_document, parse_model
from engine.language.settings_model import TierConfig
from engine.language.yaml_lines import LocatedDocument, YamlError, load_located

ModelT = TypeVar("ModelT", bound=BaseModel)


def reference_problems(config: BaseModel, doc: LocatedDocument, shown: str,
                       queues: Sequence[str] | None) -> list[Problem]:
    """What ``config`` (read from ``doc``, shown as ``shown``) names that the other settings do not
    declare. ``queues``: the declared queues, None when there is no queues file (every name is a queue
    with the defaults) or it is broken (reported on its own)."""
    problems: list[Problem] = []
    if isinstance(config, TierConfig) and queues is not None:
        # Dynamic adjustment opens its task in the tier's notify_queue: the desk must know that queue,
        # as it must every journey task's (a typo would leave the warning where no agent sees it).
        for tier, extra in config.extra_resources.items():
            if wrong := unknown_queue(extra.notify_queue, tuple(queues)):
                pos = doc.position(("extra_resources", tier, "notify_queue"))
                problems.append(Problem(shown, pos.line, pos.column, wrong))
    return problems


def _judged(model: type[ModelT], doc: LocatedDocument, shown: str,
            queues: Sequence[str] | None) -> tuple[ModelT | None, list[Problem]]:
    config, problems = parse_model(model, doc, shown)
    if config is None or problems:
        return None, problems
    problems = reference_problems(config, doc, shown, queues)
    return (None if problems else config), problems


def checked_settings(model: type[ModelT], source: str, shown: str,
                     queues: Sequence[str] | None) -> tuple[ModelT | None, list[Problem]]:
    """A settings file's text as validate judges it: the settings, or None with every problem that keeps
    them out of force, each at its line."""
    try:
        doc = load_located(source)
    except YamlError as exc:
        return None, [Problem(shown, exc.position.line, exc.position.column, exc.message)]
    if not isinstance(doc.data, dict):
        return None, [Problem(shown, 1, 1, "expected a mapping at the top of the file")]
    return _judged(model, doc, shown, queues)


def load_checked(model: type[ModelT], path: Path, queues: Sequence[str] | None) -> tuple[ModelT | None, list[Problem]]:
    """``checked_settings`` of the file at ``path`` (a missing or unreadable file is a problem too)."""
    if not path.is_file():
        return None, [Problem(display_path(path), 1, 1, "configuration file not found")]
    _, doc, problems = load_document(path)
    if doc is None:
        return None, problems
    return _judged(model, doc, display_path(path), queues)


def dropped_queue_problems(tiers_path: Path, before: Sequence[str], after: Sequence[str]) -> list[Problem]:
    """The same check from the other side, for a queues file that changes from declaring ``before`` to
    ``after``: where the tier file names a queue that was declared and no longer is. (What it named
    unknown already is its own problem, refused when it lands, and does not hold the queues back.)"""
    config, problems = load_checked(TierConfig, tiers_path, None) if tiers_path.is_file() else (None, [])
    if config is None or problems:
        return []
    _, doc, _ = load_document(tiers_path)
    if doc is None:
        return []
    shown = display_path(tiers_path)
    known = {(p.line, p.column) for p in reference_problems(config, doc, shown, before)}
    return [p for p in reference_problems(config, doc, shown, after) if (p.line, p.column) not in known]
