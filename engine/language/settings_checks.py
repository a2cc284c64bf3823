"""The checks a settings file passes to go in force, the same wherever it lands: ``journeys validate``,
the landing of ``config/tiers.yaml`` and ``config/delivery.yaml`` as versions for review (every run of
the service, planner and dispatcher, ``journeys review submit``, the console's review page), and their
reading straight from the file while no valid version is stored.

Beyond its own model a file may name what another declares: a tier's ``notify_queue`` must be a queue
of ``config/queues.yaml``, its extra resources' ``journeys`` journeys of ``journeys/``. Validate and
the landings had each their own list of checks, and the landings' was shorter (a file naming ``opz``
landed and was approved; one naming a journey no file holds, or one that could not be read, was passed
over with nothing said to the author); ``settings_file`` is now the one both call.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from engine.language.authoring_checks import unknown_queue
from engine.language.problems import Problem, display_path, load_document, parse_model
from engine.language.settings_model import DeliveryConfig, QueuesConfig, TierConfig
from engine.language.yaml_lines import LocatedDocument

ModelT = TypeVar("ModelT", bound=BaseModel)


def reference_problems(config: BaseModel, doc: LocatedDocument, shown: str,
                       queues: Sequence[str] | None, journeys: Collection[str] | None = None,
                       templates: Path | None = None) -> list[Problem]:
    """What ``config`` (read from ``doc``, shown as ``shown``) names that the other settings or the journey
    files do not declare. ``queues``: the declared queues, None when there is no queues file (every name
    is a queue with the defaults) or it is broken (reported on its own). ``journeys``: the ids of the
    valid journey files, None when they are not all known (validate given some of the files).
    ``templates``: the templates folder the delivery settings' SMS footer must leave every marketing SMS
    of within its budget; None: not checked."""
    problems: list[Problem] = []
    if isinstance(config, DeliveryConfig) and templates is not None:
        from engine.language.footer_check import footer_overruns  # renders templates: only when asked

        pos = doc.position(("marketing_sms_footer",))
        problems += [Problem(shown, pos.line, pos.column, f"marketing_sms_footer: with this footer {file}: {why}; "
                                                          "shorten the footer or raise the template's max_segments")
                     for file, why in footer_overruns(templates, config.marketing_sms_footer)]
    if not isinstance(config, TierConfig):
        return problems
    for tier, extra in config.extra_resources.items():
        # Dynamic adjustment opens its task in the tier's notify_queue: the desk must know that queue,
        # as it must every journey task's (a typo would leave the warning where no agent sees it).
        if queues is not None and (wrong := unknown_queue(extra.notify_queue, tuple(queues))):
            pos = doc.position(("extra_resources", tier, "notify_queue"))
            problems.append(Problem(shown, pos.line, pos.column, wrong))
        # ... and switches on these journeys: one no file holds would switch on nothing.
        unknown = [(i, j) for i, j in enumerate(extra.journeys) if journeys is not None and j not in journeys]
        for i, journey_id in unknown:
            pos = doc.position(("extra_resources", tier, "journeys", i))
            problems.append(Problem(shown, pos.line, pos.column, f"unknown journey {journey_id!r}"))
    return problems


def _judged(model: type[ModelT], doc: LocatedDocument, shown: str, queues: Sequence[str] | None,
            journeys: Collection[str] | None = None,
            templates: Path | None = None) -> tuple[ModelT | None, list[Problem]]:
    config, problems = parse_model(model, doc, shown)
    if config is None or problems:
        return None, problems
    problems = reference_problems(config, doc, shown, queues, journeys, templates)
    return (None if problems else config), problems


@dataclass(frozen=True)
class SettingsFile(Generic[ModelT]):
    """A settings file as every check judges it: its text ("" when it cannot be read), its settings
    (None when refused) and the problems that refuse it."""

    source: str
    config: ModelT | None
    problems: tuple[Problem, ...]


def settings_file(model: type[ModelT], path: Path, queues: Sequence[str] | None,
                  journeys: Collection[str] | None, templates: Path | None = None) -> SettingsFile[ModelT]:
    """Every check ``journeys validate`` makes of the settings file at ``path``, and the only one: validate
    reports these problems and every landing (``engine.language.settings_review``) refuses on them, so the
    two cannot disagree about a file. A missing, oversized, non-UTF-8 or unreadable file is a problem too.
    ``queues``, ``journeys`` and ``templates``: as ``reference_problems``'s."""
    shown = display_path(path)
    if not path.is_file():
        return SettingsFile("", None, (Problem(shown, 1, 1, "configuration file not found"),))
    source, doc, problems = load_document(path)
    if doc is None:
        return SettingsFile(source, None, tuple(problems))
    config, problems = _judged(model, doc, shown, queues, journeys, templates)
    return SettingsFile(source, config, tuple(problems))


def load_checked(model: type[ModelT], path: Path, queues: Sequence[str] | None) -> tuple[ModelT | None, list[Problem]]:
    """``settings_file``'s settings and problems, the journeys not checked (while nothing is stored the file
    is read as it is; its landing checks them)."""
    found = settings_file(model, path, queues, None)
    return found.config, list(found.problems)


def unknown_task_types(config: QueuesConfig, doc: LocatedDocument | None, shown: str,
                       journeys: Mapping[str, Collection[str]]) -> list[Problem]:
    """The task types of the queues file ``config`` (read from ``doc``) that name a journey, or a journey's
    step, not among ``journeys`` (journey id → its step ids): a typo would quietly require nothing. The
    same check for validate (every journey file known) and for a queues file that goes in force."""
    problems: list[Problem] = []
    for key in config.task_types:
        journey_id, _, step_id = key.partition("/")
        known = journey_id in journeys and (not step_id or step_id in journeys[journey_id])
        if not known and doc is not None:
            pos = doc.position(("task_types", key), prefer_key=True)
            problems.append(Problem(shown, pos.line, pos.column, f"unknown journey or step {key!r}"))
    return problems


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
