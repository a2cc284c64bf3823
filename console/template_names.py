"""Template names for people: the ``description:`` of a template's ``meta.yaml``, in the reader's language.

Template folders are named by code (``birthday_greeting``); their ``meta.yaml`` says what they are in
both languages, Chinese first (``生日关怀 / Birthday greeting``), as journey names do, so a page shows
the half for its locale (``journey_names.localised``) and keeps the code as secondary text at most. A
folder without a description, or whose ``meta.yaml`` cannot be read, is shown by its code. Descriptions
are read from the templates folder (the one being edited and submitted for review), each file again only
when it changes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from engine.language.paths import templates_dir
from engine.language.problems import read_source
from engine.language.yaml_lines import YamlError, load_located

_lock = threading.Lock()
_read: dict[str, tuple[tuple[int, int], str | None]] = {}  # meta.yaml path → ((mtime, size), description)


def _description(meta: Path) -> str | None:
    try:
        stat = meta.stat()
    except OSError:
        return None
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _lock:
        cached = _read.get(str(meta))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    # Bounded and checked as every edited file is: a broken meta.yaml is the template check's to report.
    text, _unread = read_source(meta)
    try:
        data: Any = load_located(text).data if text is not None else None
    except YamlError:
        data = None
    found = data.get("description") if isinstance(data, dict) else None
    description = found.strip() if isinstance(found, str) and found.strip() else None
    with _lock:
        _read[str(meta)] = (stamp, description)
    return description


def template_description(name: str, root: Path | None = None) -> str | None:
    """The ``description:`` of template ``name`` as written (both languages), or None."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None  # a code from a form or a stored row, never a path out of the folder
    return _description((root or templates_dir()) / name / "meta.yaml")
