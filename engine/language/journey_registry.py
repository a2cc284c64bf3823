"""Which journey versions are in force.

A valid file is published (a ``JourneyVersion`` row per new content hash) and is
in force. A file with errors is rejected whole and the last good version
published from the same path stays in force, so a typo pushed on a Friday
evening never stops the birthday messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, col, select

from engine.language.journey_model import Journey
from engine.language.paths import config_dir, delivery_config_path, journeys_dir, templates_dir, tiers_config_path
from engine.language.settings_model import DeliveryConfig, TierConfig
from engine.language.validation import LoadedJourney, Problem, Report, load_config, parse_model
from engine.language.validation_cache import validate_cached
from engine.language.yaml_lines import load_located
from store.clock import utcnow
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

    def enabled(self) -> list[LoadedJourney]:
        return [j for j in self.journeys.values() if j.journey.enabled]


def load_delivery_config(path: Path | None = None) -> DeliveryConfig:
    config, problems = load_config(DeliveryConfig, path or delivery_config_path())
    if config is None:
        raise ConfigError(problems)
    return config


def load_tier_config(path: Path | None = None) -> TierConfig:
    config, problems = load_config(TierConfig, path or tiers_config_path())
    if config is None:
        raise ConfigError(problems)
    return config


def _from_stored(row: JourneyVersion) -> LoadedJourney | None:
    try:
        doc = load_located(row.source)
    except Exception:  # a stored version was valid when published; be defensive all the same
        return None
    journey, problems = parse_model(Journey, doc, row.path)
    if journey is None or problems:
        return None
    return LoadedJourney(journey, row.path, row.source, row.version)


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


def load_in_force(session: Session, directory: Path | None = None) -> InForce:
    """Validate ``directory`` (default ``journeys/``), publish what is valid, fall back for the rest."""
    directory = directory or journeys_dir()
    report = validated_report(directory)
    result = InForce(problems=list(report.problems))

    stored = session.exec(
        select(JourneyVersion).order_by(col(JourneyVersion.published_at), col(JourneyVersion.id))
    ).all()
    newest_by_path: dict[str, JourneyVersion] = {}
    known: set[tuple[str, str]] = set()
    for row in stored:
        newest_by_path[row.path] = row
        known.add((row.journey_id, row.version))

    now = utcnow()
    for loaded in report.journeys:
        result.journeys[loaded.id] = loaded
        if (loaded.id, loaded.version) not in known:
            session.add(
                JourneyVersion(
                    journey_id=loaded.id, version=loaded.version, path=_key(loaded.path, directory),
                    source=loaded.source, published_at=now,
                )
            )
            known.add((loaded.id, loaded.version))
    session.flush()

    for path in report.rejected_files:
        last_good = newest_by_path.get(_key(path, directory))
        if last_good is None:
            log.warning("journey file %s is invalid and has no earlier good version: not in force", path)
            continue
        previous = _from_stored(last_good)
        if previous is None or previous.id in result.journeys:
            continue
        result.journeys[previous.id] = previous
        result.fallbacks[previous.id] = previous.version
        log.warning(
            "journey file %s is invalid; keeping version %s of %s in force", path, previous.version[:8], previous.id
        )
    return result
