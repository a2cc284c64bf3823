"""Journey names for people: the ``name:`` of the journey in force, in the reader's language.

Journey files write their name in both languages, Chinese first: ``投诉24小时响应 / Complaint
response``; a page shows the half for its locale. Names come from the published versions
(``journey_version``, newest per journey), else from the journey files on disk (a book whose
journeys were never published), else the id itself. Parsed names are kept per version, so a
page reads only the list of versions.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from engine.language.bilingual import localised
from engine.language.paths import journeys_dir
from engine.language.yaml_lines import YamlError, load_located
from store.db import session_scope
from store.models import JourneyVersion

_lock = threading.Lock()
_by_version: dict[tuple[str, str], str] = {}
_files: dict[str, tuple[tuple[tuple[str, int], ...], dict[str, str]]] = {}

__all__ = ["journey_names", "localised"]  # localised: the half of a name for a locale (engine.language.bilingual)


def _name_of(source: str) -> str | None:
    try:
        data: Any = load_located(source).data
    except YamlError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name.strip() else None


def _from_files(folder: Path) -> dict[str, str]:
    try:
        paths = sorted(p for p in folder.glob("*.y*ml") if p.is_file())
        stamp = tuple((p.name, p.stat().st_mtime_ns) for p in paths)
    except OSError:
        return {}
    key = str(folder)
    with _lock:
        cached = _files.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    names: dict[str, str] = {}
    for path in paths:
        try:
            # Bounded as validate reads it: a file with an alias chain must not hang the console.
            data: Any = load_located(path.read_text(encoding="utf-8")).data
        except (OSError, UnicodeDecodeError, YamlError):
            continue
        if isinstance(data, dict) and isinstance(data.get("id"), str) and isinstance(data.get("name"), str):
            names[data["id"]] = data["name"]
    with _lock:
        _files[key] = (stamp, names)
    return names


def journey_names(db_url: str | None) -> dict[str, str]:
    """journey id → its ``name:`` as written (both languages)."""
    names = dict(_from_files(journeys_dir()))
    with session_scope(db_url) as session:
        newest: dict[str, tuple[int, str]] = {}
        versions = select(JourneyVersion.id, JourneyVersion.journey_id, JourneyVersion.version)
        for row_id, journey_id, version in session.exec(versions.order_by(col(JourneyVersion.id))):
            assert row_id is not None
            newest[journey_id] = (row_id, version)
        with _lock:
            missing = {row_id: (jid, version) for jid, (row_id, version) in newest.items()
                       if (jid, version) not in _by_version}
        if missing:
            for row_id, source in session.exec(
                select(JourneyVersion.id, JourneyVersion.source).where(col(JourneyVersion.id).in_(list(missing)))
            ):
                assert row_id is not None
                name = _name_of(source)
                with _lock:
                    _by_version[missing[row_id]] = name or ""
    with _lock:
        for jid, (_row_id, version) in newest.items():
            name = _by_version.get((jid, version))
            if name:
                names[jid] = name
    return names
