"""Review before going live for the delivery settings: which version of ``config/delivery.yaml`` and
``config/tiers.yaml`` is in force.

Both files decide what every customer receives (caps, quiet hours, footers, the control group, tier
rules), so a change of either always needs review, whatever ``config/review.yaml`` says about
journey categories. A valid file's content is a version (``kind = setting``, named
``setting:<file>``) in the journeys' version table, landed, approved, rejected and rolled back by
``engine.language.journey_review``; an invalid file lands nothing (validate reports it at its line)
and the version in force stays. The files as shipped count as approved at install.

Every production reader takes the settings in force, once per run: the dispatcher
(``engine.sending.dispatch.make_dispatcher``: caps, rate limits, attempts) through
``in_force_delivery``; the planner, simulate, explain and the event path through
``delivery_settings``; retiering and the tier review through ``tier_settings``. With no valid stored
version the file is read as before. A dry run (simulate, explain, a planner or retier dry run) lands
nothing: it sees what a written run would, and rolls the landing back.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from engine.language.journey_registry import journey_steps, load_delivery_config, load_tier_config
from engine.language.journey_review import FROM_FILES, Landing, ReviewConfig, land_committed, land_versions
from engine.language.paths import config_dir, templates_dir
from engine.language.problems import Problem, display_path, parse_model
from engine.language.queue_config import declared_queues
from engine.language.settings_checks import settings_file
from engine.language.settings_model import DeliveryConfig, TierConfig
from engine.language.yaml_lines import load_located
from store.models import JourneyVersion

log = logging.getLogger(__name__)

SETTING = "setting"
PREFIX = "setting:"
MODELS: dict[str, type[BaseModel]] = {"delivery.yaml": DeliveryConfig, "tiers.yaml": TierConfig}


def subject(name: str) -> str:
    return PREFIX + name


# Keyed by the text, so a run that finds the same file and version in force parses nothing again
# (the models are frozen, so the runs share them).
@lru_cache(maxsize=16)
def parsed(name: str, source: str) -> BaseModel | None:
    """The settings a file's text holds, or None if it is not valid."""
    try:
        model, problems = parse_model(MODELS[name], load_located(source), f"config/{name}")
    except Exception:  # an invalid file is validate's to report; it never goes in force
        return None
    return None if model is None or problems else model


@lru_cache(maxsize=16)
def _refusal(name: str, source: str, shown: str, problems: tuple[Problem, ...]) -> tuple[Problem, ...]:
    """Logged once per text, not at every run that finds it unchanged."""
    if problems:
        log.error("%s is not landed, the settings in force stay:\n%s", shown, "\n".join(str(p) for p in problems))
    return problems


def _files(directory: Path) -> Iterator[tuple[str, str, tuple[Problem, ...]]]:
    """Each settings file of ``directory``: its name, its text and why it may not land, by validate's own
    checks (``engine.language.settings_checks.settings_file``): a file that is missing, cannot be read or
    is refused is named with its problems, and lands nothing."""
    queues = declared_queues(directory / "queues.yaml")
    for name, model in MODELS.items():
        path = directory / name
        try:
            # The journeys a tier's extra resources may name: those of the journey files, which land with it;
            # the templates the delivery settings' SMS footer must leave within budget: the folder's.
            found = settings_file(model, path, queues, journey_steps() if model is TierConfig else None,
                                  templates_dir() if model is DeliveryConfig else None)
            source, problems = found.source, found.problems
        except Exception as exc:  # whatever stops the check stops the landing, never the run
            source, problems = "", (Problem(display_path(path), 1, 1, f"cannot be checked: {exc}"),)
        yield name, source, _refusal(name, source, display_path(path), problems)


def refused_settings(directory: Path | None = None) -> list[Problem]:
    """What keeps the settings files of ``directory`` (default ``config/``) from landing, each at its line."""
    return [p for _name, _source, problems in _files(directory or config_dir()) for p in problems]


def land_settings(session: Session, directory: Path | None = None, *, actor: str = FROM_FILES,
                  config: ReviewConfig | None = None) -> dict[str, JourneyVersion]:
    """Record the settings files not seen before that pass validate's checks (always pending after install);
    rows in force by name. A file that fails them lands nothing, whole: the version in force stays."""
    items = [Landing(subject(name), hashlib.sha256(source.encode("utf-8")).hexdigest(), f"config/{name}", source,
                     SETTING)
             for name, source, problems in _files(directory or config_dir()) if not problems]
    return land_versions(session, SETTING, items, lambda row: SETTING, actor=actor, config=config, always=True)


def in_force_settings(engine: Engine, directory: Path | None = None, *, write: bool = True) -> dict[str, BaseModel]:
    """Land the settings changes, then file name → the settings in force. ``write=False`` (a dry run)
    rolls the landing back: it writes nothing and still sees what a written run would."""
    with Session(engine) as session:

        def landing() -> dict[str, BaseModel]:
            rows = land_settings(session, directory)
            found = {name: parsed(name, row.source) for name in MODELS if (row := rows.get(subject(name))) is not None}
            return {name: model for name, model in found.items() if model is not None}

        if write:
            return land_committed(session, landing)
        try:
            return landing()
        except IntegrityError:  # landed meanwhile by a written run: theirs is read
            session.rollback()
            return landing()
        finally:
            session.rollback()


def in_force_delivery(engine: Engine, *, write: bool = True) -> DeliveryConfig | None:
    """The delivery settings in force; None while no valid version was ever stored (read the file then)."""
    found = in_force_settings(engine, write=write).get("delivery.yaml")
    return found if isinstance(found, DeliveryConfig) else None


def delivery_settings(engine: Engine, *, write: bool = True) -> DeliveryConfig:
    """The delivery settings in force, else (nothing valid stored yet) the file's (ConfigError if invalid)."""
    return in_force_delivery(engine, write=write) or load_delivery_config()


def programme_zone(engine: Engine | None = None) -> str:
    """The programme's time zone in force (the delivery settings' ``default_timezone``, of the configured
    store by default): the zone its days are counted in on pages and in typed dates. Writes nothing."""
    from store.db import get_engine

    return delivery_settings(engine or get_engine(), write=False).default_timezone


def tier_settings(engine: Engine, *, write: bool = True) -> TierConfig:
    """The tier settings in force, else (nothing valid stored yet) the file's (ConfigError if invalid)."""
    found = in_force_settings(engine, write=write).get("tiers.yaml")
    return found if isinstance(found, TierConfig) else load_tier_config()
