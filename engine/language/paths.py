"""Where the project's files are: journeys, templates and configuration (overridable by environment)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _dir(env: str, default: str) -> Path:
    value = os.environ.get(env)
    return Path(value) if value else PROJECT_ROOT / default


def journeys_dir() -> Path:
    return _dir("JOURNEYS_DIR", "journeys")


def templates_dir() -> Path:
    return _dir("JOURNEYS_TEMPLATES_DIR", "templates")


def config_dir() -> Path:
    return _dir("JOURNEYS_CONFIG_DIR", "config")


def tiers_config_path() -> Path:
    return config_dir() / "tiers.yaml"


def delivery_config_path() -> Path:
    return config_dir() / "delivery.yaml"
