"""Where the project's files are: journeys, templates and configuration (overridable by environment)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


# Each folder setting and the project folder it stands in for.
FOLDER_SETTINGS = (
    ("JOURNEYS_DIR", "journeys"), ("JOURNEYS_TEMPLATES_DIR", "templates"), ("JOURNEYS_CONFIG_DIR", "config"),
)


def folder_setting_problem() -> str | None:
    """One line naming the first folder setting that names no folder, or None. A mistyped one was met file by
    file instead: every journey "rejected" for templates "not under templates/", the tier model's journeys
    unknown, the settings "not found", none of it naming the variable to mend."""
    for env, default in FOLDER_SETTINGS:
        value = os.environ.get(env)
        if value and not Path(value).is_dir():
            what = "not a folder" if Path(value).exists() else "no such folder"
            return (f"{env}={value}: {what} (a relative path is read from the working directory; "
                    f"unset it for the project's own {default}/)")
    return None


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


def journey_files(paths: Iterable[Path]) -> list[Path]:
    """The journey files ``paths`` name, in the order ``validate`` reads them (folders: every .yaml/.yml below,
    sorted); the validation cache keys on the same list."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            files.append(path)
    return files
