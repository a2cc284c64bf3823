"""Review before going live for the delivery settings: which version of ``config/delivery.yaml`` and
``config/tiers.yaml`` is in force.

Both files decide what every customer receives (caps, quiet hours, footers, the control group, tier
rules), so a change of either always needs review, whatever ``config/review.yaml`` says about
journey categories. A valid file's content is a version (``kind = setting``, named
``setting:<file>``) in the journeys' version table, landed, approved, rejected and rolled back by
``engine.language.journey_review``; an invalid file lands nothing (validate reports it at its line)
and the version in force stays. The files as shipped count as approved at install.

The dispatcher (``engine.sending.dispatch.make_dispatcher``: caps, rate limits, attempts) reads the
delivery settings in force through ``in_force_delivery`` once per run; with no valid stored version
the file is read as before.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.language.journey_review import FROM_FILES, Landing, ReviewConfig, land_committed, land_versions
from engine.language.paths import config_dir
from engine.language.problems import parse_model
from engine.language.settings_model import DeliveryConfig, TierConfig
from engine.language.yaml_lines import load_located
from store.models import JourneyVersion

SETTING = "setting"
PREFIX = "setting:"
MODELS: dict[str, type[BaseModel]] = {"delivery.yaml": DeliveryConfig, "tiers.yaml": TierConfig}


def subject(name: str) -> str:
    return PREFIX + name


def parsed(name: str, source: str) -> BaseModel | None:
    """The settings a file's text holds, or None if it is not valid."""
    try:
        model, problems = parse_model(MODELS[name], load_located(source), f"config/{name}")
    except Exception:  # an invalid file is validate's to report; it never goes in force
        return None
    return None if model is None or problems else model


def land_settings(session: Session, directory: Path | None = None, *, actor: str = FROM_FILES,
                  config: ReviewConfig | None = None) -> dict[str, JourneyVersion]:
    """Record the valid settings files not seen before (always pending after install); rows in force by name."""
    directory = directory or config_dir()
    items = []
    for name in MODELS:
        path = directory / name
        if not path.is_file():
            continue
        source = path.read_text(encoding="utf-8")
        if parsed(name, source) is None:
            continue
        items.append(Landing(subject(name), hashlib.sha256(source.encode("utf-8")).hexdigest(), f"config/{name}",
                             source, SETTING))
    return land_versions(session, SETTING, items, lambda row: SETTING, actor=actor, config=config, always=True)


def in_force_settings(engine: Engine, directory: Path | None = None) -> dict[str, BaseModel]:
    """Land the settings changes, then file name → the settings in force."""
    with Session(engine) as session:
        rows = land_committed(session, lambda: land_settings(session, directory))
        found = {name: parsed(name, row.source) for name in MODELS if (row := rows.get(subject(name))) is not None}
    return {name: model for name, model in found.items() if model is not None}


def in_force_delivery(engine: Engine) -> DeliveryConfig | None:
    """The delivery settings in force; None while no valid version was ever stored (read the file then)."""
    found = in_force_settings(engine).get("delivery.yaml")
    return found if isinstance(found, DeliveryConfig) else None
