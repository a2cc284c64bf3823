"""Which journey versions are in force.

A valid file is published (a ``JourneyVersion`` row per new content hash). It goes
in force at once unless its category needs review (``engine.language.journey_review``):
then the last approved version stays in force until someone approves the change. A
file with errors is rejected whole and the version in force from the same path stays
in force, so a typo pushed on a Friday evening never stops the birthday messages. Two files
that claim one journey id are both rejected by validation; here the one that is that journey's file
in force (its stored version's path) is kept, and only the other is rejected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, select

from engine.language import paths
from engine.language.journey_model import Journey
from engine.language.journey_review import FROM_FILES, JOURNEY, in_force_of, land, stored_journey
from engine.language.paths import config_dir, delivery_config_path, journeys_dir, templates_dir, tiers_config_path
from engine.language.problems import load_document, parse_model
from engine.language.queue_config import declared_queues
from engine.language.settings_checks import load_checked
from engine.language.settings_model import DeliveryConfig, TierConfig
from engine.language.validation import LoadedJourney, Problem, Report, content_version, is_clash
from engine.language.validation import journey_steps as journey_steps_of
from engine.language.validation_cache import validate_cached
from store.models import JourneyVersion

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A configuration file is invalid; the message lists every problem as path:line:col."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class InForce:
    journeys: dict[str, LoadedJourney] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # journey id → version kept from the store because its file is currently invalid
    fallbacks: dict[str, str] = field(default_factory=dict)
    # journey id → the file's version, not in force: pending review or rejected (the version in
    # force is in ``journeys`` if the journey has an approved one)
    held: dict[str, str] = field(default_factory=dict)

    def enabled(self) -> list[LoadedJourney]:
        return [j for j in self.journeys.values() if j.journey.enabled]


def load_delivery_config(path: Path | None = None) -> DeliveryConfig:
    """The file's settings, read while no valid version is stored: refused (ConfigError) on what validate
    refuses, as its landing is (``engine.language.settings_checks``)."""
    path = path or delivery_config_path()
    config, problems = load_checked(DeliveryConfig, path, declared_queues(path.parent / "queues.yaml"))
    if config is None:
        raise ConfigError(problems)
    return config


def load_tier_config(path: Path | None = None) -> TierConfig:
    """As ``load_delivery_config``, for ``config/tiers.yaml``."""
    path = path or tiers_config_path()
    config, problems = load_checked(TierConfig, path, declared_queues(path.parent / "queues.yaml"))
    if config is None:
        raise ConfigError(problems)
    return config


def _key(shown_path: str, directory: Path) -> str:
    """A file's name relative to the journeys folder, whatever the working directory was."""
    try:
        return str(Path(shown_path).resolve().relative_to(directory.resolve()))
    except ValueError:
        return shown_path


FileStamp = tuple[str, int, int]
_validated: dict[tuple[str, ...], tuple[tuple[FileStamp, ...], Report]] = {}


def _stamps(*folders: Path) -> tuple[FileStamp, ...]:
    stamps: list[FileStamp] = []
    for folder in folders:
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.is_file():
                stat = path.stat()
                stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


def validated_report(directory: Path | None = None) -> Report:
    """The validation report of ``directory`` (default ``journeys/``), validated only when something changed.

    ``validate`` re-reads every journey, renders every template and reads the configuration (about
    a second for the shipped set), and the planner, explain, simulate and the console's journeys
    page all need it. Within a process nothing is re-read while no file in the journeys, templates
    or config folder has a new time or size; across processes the result is on disk, keyed by the
    content of everything it depends on (``engine.language.validation_cache``).
    """
    directory = directory or journeys_dir()
    folders = (directory.resolve(), templates_dir().resolve(), config_dir().resolve())
    key = (str(Path.cwd()), *(str(f) for f in folders))  # cwd: problems name paths relative to it
    stamps = _stamps(*folders)
    cached = _validated.get(key)
    if cached is not None and cached[0] == stamps:
        return cached[1]
    report = validate_cached([directory])
    _validated[key] = (stamps, report)
    return report


def journey_steps(directory: Path | None = None) -> dict[str, frozenset[str]] | None:
    """What a settings file may name of the journeys when it lands: the journeys of the valid files of
    ``directory`` (default ``journeys/``), which land with it, each with its step ids; None when the folder
    holds no journey file (validate then checks no name against it either)."""
    directory = directory or journeys_dir()
    if not paths.journey_files([directory]):
        return None
    return journey_steps_of(validated_report(directory).journeys)


def land_changes(session: Session, directory: Path | None = None, actor: str = FROM_FILES) -> dict[str, JourneyVersion]:
    """Record the new versions of the files in ``directory`` (signed by ``actor``); the rows in force by journey."""
    directory = directory or journeys_dir()
    report = validated_report(directory)
    return land(session, report.journeys, lambda path: _key(path, directory), actor=actor)


def _kept_from_clash(session: Session, report: Report, directory: Path) -> list[LoadedJourney]:
    """The files rejected only because another file claims their journey id, that are their journey's
    file in force: each keeps its journey (the newcomer is the one rejected)."""
    clashing = {p.path for p in report.problems if is_clash(p)}
    alone = [path for path in clashing if all(is_clash(p) for p in report.problems if p.path == path)]
    if not alone:
        return []
    rows = in_force_of(session.exec(select(JourneyVersion).where(JourneyVersion.kind == JOURNEY)))
    files_in_force = {(row.journey_id, row.path) for row in rows.values()}
    kept = []
    for path in alone:
        source, doc, problems = load_document(Path(path))
        journey = parse_model(Journey, doc, path)[0] if doc is not None and not problems else None
        if journey is not None and (journey.id, _key(path, directory)) in files_in_force:
            kept.append(LoadedJourney(journey, path, source, content_version(source)))
    return kept


def load_in_force(session: Session, directory: Path | None = None) -> InForce:
    """Validate ``directory`` (default ``journeys/``), record new versions, and put in force the approved ones."""
    directory = directory or journeys_dir()
    report = validated_report(directory)
    owners = _kept_from_clash(session, report, directory)
    kept_paths = {j.path for j in owners}
    result = InForce(problems=[p for p in report.problems if p.path not in kept_paths])
    journeys = [*report.journeys, *owners]
    in_force = land(session, journeys, lambda path: _key(path, directory))

    for loaded in journeys:
        row = in_force.get(loaded.id)
        if row is not None and row.version == loaded.version:
            result.journeys[loaded.id] = loaded
            continue
        result.held[loaded.id] = loaded.version
        kept = stored_journey(row) if row is not None else None
        if kept is None:
            log.info("journey %s has no approved version yet: not in force", loaded.id)
            continue
        result.journeys[kept.id] = kept
        log.info("journey %s: version %s awaits review or was rejected; %s stays in force",
                 loaded.id, loaded.version[:8], kept.version[:8])

    by_path = {row.path: row for row in in_force.values()}
    for path in [p for p in report.rejected_files if p not in kept_paths]:
        last_good = by_path.get(_key(path, directory))
        if last_good is None:
            log.warning("journey file %s is invalid and has no earlier good version: not in force", path)
            continue
        previous = stored_journey(last_good)
        if previous is None:
            # Stored under an older release whose checks it passed, refused by today's (a cron firing
            # more than once a day, say): kept out of force rather than run past a bound.
            log.error("journey file %s is invalid and its last good version %s fails this release's checks: "
                      "%s is not in force until the file is mended", path, last_good.version[:8], last_good.journey_id)
            continue
        if previous.id in result.journeys:
            continue
        result.journeys[previous.id] = previous
        result.fallbacks[previous.id] = previous.version
        log.warning(
            "journey file %s is invalid; keeping version %s of %s in force", path, previous.version[:8], previous.id
        )
    return result
