"""Review before going live for templates: which version of each template folder is in force.

A template folder (``templates/<name>/``: ``meta.yaml`` and its ``*.j2`` and field files) is one
version, stored as one text (each file under a ``==> name <==`` header, so a change reads as a
diff) in the journeys' version table with ``kind = template`` and the name ``template:<name>``;
``engine.language.journey_review`` lands, approves, rejects and rolls back these rows exactly as
it does journeys.

The category of a template is that of the journeys that use it (``send``, ``webhook`` or a task's
``script``): ``marketing`` if any marketing journey uses it or its ``meta.yaml`` says ``category:
marketing`` (the renderer adds the opt-out line then), else the category of the journeys using it;
a template no journey uses yet counts as ``unused``, which ``config/review.yaml`` does not list, so
it needs review (a template is content a customer may receive). The shipped folders count as
approved at install, like the journeys.

What the renderers read is the in-force set written out once to a folder named by its content
(``in_force_root``): dispatch loads the set once per run (``engine.sending.render_batch``, looking
again every 30 s in a long-running dispatcher) and the task page's call scripts at most every 30 s
(``recent_in_force_root``), so the hot path renders from files as before and never asks the
database per message. Previews (``console.ops_preview``, ``journeys preview``) and test sends render
that folder too, looked up at each request (``in_force_folder``), so they show what customers would
get, not an edit awaiting review; only the review page renders a pending version, from its stored
text. A template with no approved version yet is absent from that folder: sending it fails as a
missing template.

A folder whose files do not compile (``template_check.template_problems_by_name``: syntax errors,
unknown filters or tests, a broken ``meta.yaml``) is not recorded at all: like a journey file with
errors it is rejected whole, with a warning at its file:line, and its last good version stays in
force (a category needing no review would otherwise put it in force at once). The check is
remembered per folder and content hash, so the landing every 30 s costs nothing for unchanged folders.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.language.journey_review import FROM_FILES, Landing, ReviewConfig, land_committed, land_versions
from engine.language.paths import journeys_dir, templates_dir
from engine.language.problems import Problem, read_source
from engine.language.template_check import template_problems_by_name
from engine.language.yaml_lines import YamlError, load_located
from store.models import JourneyVersion

TEMPLATE = "template"
PREFIX = "template:"
UNUSED = "unused"
_HEADER = re.compile(r"^==> (?P<name>[^<>\n]+?)(?P<bare> \(no newline at end\))? <==\n$")

log = logging.getLogger(__name__)

# Folder path → (content hash, its problems): one entry per folder, so it stays as small as the templates folder.
_checked: dict[str, tuple[str, list[Problem]]] = {}
_checked_lock = threading.Lock()


def subject(name: str) -> str:
    return PREFIX + name


def name_of(subject_id: str) -> str:
    return subject_id.removeprefix(PREFIX)


def read_folder(folder: Path) -> tuple[str, list[Problem]]:
    """Every file of a template folder as one text, in name order (``folder_files`` reverses it), and a
    problem at each file that cannot be read as an edited file is (``problems.read_source``: over the
    size bound, not UTF-8, no regular file); such a file is left out of the text, and its folder is
    not recorded. A file no channel reads (notes, a stray export) counts: it would be stored too."""
    parts: list[str] = []
    unread: list[Problem] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text, problem = read_source(path)
        if text is None:
            assert problem is not None
            unread.append(problem)
            continue
        bare = not text.endswith("\n")
        parts.append(f"==> {path.relative_to(folder).as_posix()}{' (no newline at end)' if bare else ''} <==\n")
        parts.append(text + ("\n" if bare else ""))
    return "".join(parts), unread


def folder_source(folder: Path) -> str:
    """The text ``read_folder`` gives for a folder (what a version of it stores)."""
    return read_folder(folder)[0]


def folder_files(source: str) -> dict[str, str]:
    """File name → content of a stored template version."""
    files: dict[str, list[str]] = {}
    bare: set[str] = set()
    current: list[str] | None = None
    for line in source.splitlines(keepends=True):
        header = _HEADER.match(line)
        if header:
            current = files.setdefault(header["name"], [])
            if header["bare"]:
                bare.add(header["name"])
        elif current is not None:
            current.append(line)
    out = {name: "".join(lines) for name, lines in files.items()}
    return {name: text[:-1] if name in bare and text.endswith("\n") else text for name, text in out.items()}


def write_folder(source: str, folder: Path) -> None:
    for name, text in folder_files(source).items():
        target = folder / name
        if folder.resolve() not in target.resolve().parents:
            continue  # a stored name never leaves its folder
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def template_categories(directory: Path | None = None) -> dict[str, str]:
    """Template name → its category from the journey files that use it (marketing wins)."""
    found: dict[str, set[str]] = {}
    directory = directory or journeys_dir()
    for path in sorted(directory.rglob("*.yaml")) if directory.is_dir() else []:
        text, _unread = read_source(path)
        if text is None:
            continue  # an unreadable journey is validate's to report
        category, names = _journey_uses(text)
        for name in names:
            found.setdefault(name, set()).add(category)
    return {name: "marketing" if "marketing" in cats else sorted(cats)[0] for name, cats in found.items()}


# Keyed by the text: every dispatch run lands the templates, and parsing the journey files and meta.yaml
# files again each time was most of its cost (about 0.15 s of CPU a run for the shipped 31 and 55).
@lru_cache(maxsize=256)
def _journey_uses(text: str) -> tuple[str, tuple[str, ...]]:
    """A journey file's category and the templates its steps use (none if it is not a journey's YAML)."""
    try:
        data = load_located(text).data
    except YamlError:
        return "", ()
    if not isinstance(data, dict):
        return "", ()
    return str(data.get("category") or ""), tuple(_used(data.get("steps")))


def _used(steps: Any) -> Iterable[str]:
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict):
            continue
        for key, field in (("send", "template"), ("webhook", "template"), ("task", "script")):
            action = step.get(key)
            if isinstance(action, dict) and isinstance(action.get(field), str):
                yield action[field]


def _meta_category(folder: Path) -> str | None:
    text, _unread = read_source(folder / "meta.yaml")
    return _category_in(text) if text is not None else None


@lru_cache(maxsize=256)
def _category_in(meta_text: str) -> str | None:
    try:
        meta = load_located(meta_text).data
    except YamlError:
        return None
    return str(meta.get("category")) if isinstance(meta, dict) else None


def _version(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def land_templates(session: Session, root: Path | None = None, *, actor: str = FROM_FILES,
                   config: ReviewConfig | None = None) -> dict[str, JourneyVersion]:
    """Record the template folders not seen before, except those that do not compile; the rows in
    force by ``template:<name>``."""
    root = root or templates_dir()
    categories = template_categories()
    items = []
    newly_broken: dict[str, tuple[str, list[Problem]]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if not (folder / "meta.yaml").is_file():
            continue
        source, unread = read_folder(folder)
        version = _version(source)
        problems, first_seen = _problems(root, folder, (source, unread), version)
        if problems is None:
            continue  # edited while being checked: the next landing reads it whole
        if problems:
            if first_seen:
                newly_broken[folder.name] = (version, problems)
            continue
        category = "marketing" if _meta_category(folder) == "marketing" else categories.get(folder.name, UNUSED)
        items.append(Landing(subject(folder.name), version, f"templates/{folder.name}", source, category))
    in_force = land_versions(session, TEMPLATE, items,
                             lambda row: categories.get(name_of(row.journey_id), UNUSED), actor=actor, config=config)
    for name, (version, problems) in newly_broken.items():
        kept = in_force.get(subject(name))
        held = f"version {kept.version[:8]} stays in force" if kept else "it has no good version: not in force"
        log.warning("template folder %s (version %s) has errors and is not recorded; %s:\n%s",
                    name, version[:8], held, "\n".join(f"  {p}" for p in problems))
    return in_force


def broken_templates(root: Path | None = None) -> dict[str, list[Problem]]:
    """The template folders that do not compile, by name, with their file:line problems: what
    ``land_templates`` would pass over. Checked again only where a folder's content changed."""
    root = root or templates_dir()
    out: dict[str, list[Problem]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if (folder / "meta.yaml").is_file():
            read = read_folder(folder)
            problems, _ = _problems(root, folder, read, _version(read[0]))
            if problems:
                out[folder.name] = problems
    return out


def _problems(root: Path, folder: Path, read: tuple[str, list[Problem]],
              version: str) -> tuple[list[Problem] | None, bool]:
    """What keeps ``folder`` (``read`` as its text and unreadable files, ``version`` that text's hash)
    from compiling, and whether this is the first time this process checked that content; None when the
    files changed during the check, which then tells nothing about ``read``."""
    key = str(folder.resolve())
    # An unreadable file is not in the text: its problem tells one such content from another.
    checked_as = "\0".join([version, *map(str, read[1])])
    with _checked_lock:
        found = _checked.get(key)
    if found is not None and found[0] == checked_as:
        return found[1], False
    compiled = template_problems_by_name(root, [folder.name]).get(folder.name, [])
    # The check reports the files it reads itself (meta.yaml, the channels' files) when unreadable.
    problems = [*compiled, *(p for p in read[1] if p not in compiled)]
    if read_folder(folder) != read:
        return None, False
    with _checked_lock:
        _checked[key] = (checked_as, problems)
    return problems, True


def in_force_root(session: Session, root: Path | None = None) -> Path:
    """Land the template changes, then the folder holding every template's version in force.

    The folder is named by the in-force set's content, so it is written once and shared by every
    process (and renderer cache) that sees the same set.
    """
    in_force = land_committed(session, lambda: land_templates(session, root))
    rows = sorted(in_force.values(), key=lambda r: r.journey_id)
    key = hashlib.sha256("".join(f"{r.journey_id}\0{r.version}\n" for r in rows).encode()).hexdigest()[:24]
    target = Path(tempfile.gettempdir()) / "journeys-templates-in-force" / key
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    for row in rows:
        write_folder(row.source, building / name_of(row.journey_id))
    try:
        os.replace(building, target)
    except OSError:  # written meanwhile by another process: theirs is the same
        shutil.rmtree(building, ignore_errors=True)
    return target


def in_force_folder(engine: Engine) -> Path:
    """``in_force_root`` of the templates folder now, landing in a session of its own (a caller's open
    transaction is left alone)."""
    # The rows in force are only read after the landing commits: expired, each would be read again (a query
    # per template, every landing).
    with Session(engine, expire_on_commit=False) as own:
        return in_force_root(own, templates_dir())


class InForceTemplates:
    """The in-force folder of one store, looked up again at most every ``max_age`` seconds (the landing
    commits in a session of its own, so a caller's open transaction is left alone)."""

    def __init__(self, max_age: float = 30.0) -> None:
        self.max_age = max_age
        self._found: tuple[float, Path] | None = None
        self._lock = threading.Lock()

    def folder(self, engine: Engine) -> Path:
        with self._lock:
            if self._found is None or time.monotonic() - self._found[0] > self.max_age:
                self._found = (time.monotonic(), in_force_folder(engine))
            return self._found[1]


_by_store: dict[tuple[str, str], InForceTemplates] = {}
_by_store_lock = threading.Lock()


def recent_in_force_root(engine: Engine) -> Path:
    """``in_force_root`` for pages that render one message per request (the task page's call script):
    remembered per store and templates folder for up to 30 s."""
    key = (engine.url.render_as_string(hide_password=True), str(templates_dir()))
    with _by_store_lock:
        found = _by_store.setdefault(key, InForceTemplates())
    return found.folder(engine)
