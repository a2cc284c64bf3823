"""Validation results kept on disk, keyed by a hash of everything they depend on.

``validate`` reads every journey, renders every template it uses and reads the configuration:
about a second, and the CLI, the planner and the console's journeys page each used to pay it on
every call. Here a result is stored as plain JSON under a key that hashes every input that can
change it:

- the journey files (their names as given and their contents), and which files the default
  journeys folder holds (whether a run covers all of them decides a configuration check);
- every file under the templates folder (a template may include another, so the whole tree);
- every file under the configuration folder (tiers, delivery, work calendar);
- the validator's code (the source of every project module it imports, ``VALIDATOR_MODULES``),
  the Python version and the installed libraries it leans on (pydantic, Jinja2, …);
- the working directory, since problems name files relative to it.

Any change gives a new key, so nothing is ever invalidated by hand. An entry that cannot be read,
is not JSON, has the wrong shape or names another key is ignored and written again; nothing in
the cache is executed or unpickled. When the planner rebuilds the journeys from an entry it reads
them from the files again and checks their content hash, so an entry can never put text in force
that is not on disk.

Where: ``$JOURNEYS_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/service-journeys`` (by default
``~/.cache/service-journeys``), in a ``validation`` folder; never inside journeys/ or templates/.
An unwritable place only means no caching.

This module imports nothing heavy at module level: ``journeys validate`` answers from a cached
entry without loading pydantic, SQLAlchemy or Jinja.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.language.paths import PROJECT_ROOT, config_dir, journey_files, journeys_dir, templates_dir

if TYPE_CHECKING:
    from engine.language.validation import Report

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "JOURNEYS_CACHE_DIR"
# Bumped when the entry layout or the meaning of a key changes.
FORMAT = 1
# Oldest entries beyond this many are removed when a new one is written.
MAX_ENTRIES = 200

# Every project module ``engine.language.validation`` loads: a change to any of them may change
# a verdict. tests/language/test_validation_cache.py checks that the list is complete.
VALIDATOR_MODULES: tuple[str, ...] = (
    "channels",
    "channels.base",
    "channels.sms_segments",
    "channels.template_files",
    "channels.webhook_targets",
    "channels.wechat_fields",
    "engine",
    "engine.language",
    "engine.language.authoring_checks",
    "engine.language.bilingual",
    "engine.language.catalogue",
    "engine.language.condition_values",
    "engine.language.conditions",
    "engine.language.durations",
    "engine.language.faults",
    "engine.language.event_types",
    "engine.language.festivals",
    "engine.language.footer_check",
    "engine.language.journey_bounds",
    "engine.language.journey_model",
    "engine.language.journey_switches",
    "engine.language.locales",
    "engine.language.paths",
    "engine.language.problems",
    "engine.language.render_bounds",
    "engine.language.salvage",
    "engine.language.settings_checks",
    "engine.language.settings_model",
    "engine.language.shape_hints",
    "engine.language.task_script_check",
    "engine.language.template_check",
    "engine.language.template_codegen",
    "engine.language.template_context",
    "engine.language.template_nesting",
    "engine.language.template_scope",
    "engine.language.templates",
    "engine.language.validation",
    "engine.language.validation_cache",
    "engine.language.webhook_config",
    "engine.language.work_calendar",
    "engine.language.yaml_lines",
    "store",
    "store.clock",
    "store.models",
)
# Third-party packages whose behaviour shows in a verdict (parsing, rendering, calendars).
VALIDATOR_LIBRARIES: tuple[str, ...] = (
    "pydantic", "pydantic_core", "jinja2", "yaml", "babel", "chinese_calendar", "lunar_python", "croniter",
)


# --- results as plain data ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProblemRecord:
    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:  # the same text as engine.language.problems.Problem
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


@dataclass(frozen=True)
class JourneySummary:
    """What ``journeys validate`` prints about a valid journey, and where to read it again."""

    path: str  # as validation shows it
    file: int  # index into the validated file list
    id: str
    version: str
    category: str
    entry: str
    tiers: tuple[str, ...] | None
    steps: tuple[str, ...]


@dataclass(frozen=True)
class ValidationResult:
    problems: tuple[ProblemRecord, ...]
    rejected_files: tuple[str, ...]
    journeys: tuple[JourneySummary, ...]
    from_cache: bool = False
    warnings: tuple[ProblemRecord, ...] = ()  # reject nothing (engine.language.validation)

    @property
    def ok(self) -> bool:
        return not self.problems


def _result_json(result: ValidationResult) -> dict[str, Any]:
    return {
        "problems": [[p.path, p.line, p.column, p.message] for p in result.problems],
        "warnings": [[p.path, p.line, p.column, p.message] for p in result.warnings],
        "rejected_files": list(result.rejected_files),
        "journeys": [
            {"path": j.path, "file": j.file, "id": j.id, "version": j.version, "category": j.category,
             "entry": j.entry, "tiers": None if j.tiers is None else list(j.tiers), "steps": list(j.steps)}
            for j in result.journeys
        ],
    }


class _BadEntry(ValueError):
    pass


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise _BadEntry("expected a string")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _BadEntry("expected an integer")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _BadEntry("expected a list")
    return value


def _result_from_json(data: Any, file_count: int) -> ValidationResult:
    """The result an entry holds, every field checked: a damaged entry raises ``_BadEntry``."""
    if not isinstance(data, dict):
        raise _BadEntry("expected an object")
    problems: list[ProblemRecord] = []
    warnings: list[ProblemRecord] = []
    for key, found in (("problems", problems), ("warnings", warnings)):
        for item in _list(data.get(key)):
            fields = _list(item)
            if len(fields) != 4:
                raise _BadEntry("a problem has four fields")
            path, line, column, message = fields
            found.append(ProblemRecord(_str(path), _int(line), _int(column), _str(message)))
    rejected = tuple(_str(p) for p in _list(data.get("rejected_files")))
    journeys = []
    for item in _list(data.get("journeys")):
        if not isinstance(item, dict):
            raise _BadEntry("expected an object")
        index = _int(item.get("file"))
        if not 0 <= index < file_count:
            raise _BadEntry("file index out of range")
        tiers = item.get("tiers")
        journeys.append(JourneySummary(
            path=_str(item.get("path")), file=index, id=_str(item.get("id")), version=_str(item.get("version")),
            category=_str(item.get("category")), entry=_str(item.get("entry")),
            tiers=None if tiers is None else tuple(_str(t) for t in _list(tiers)),
            steps=tuple(_str(s) for s in _list(item.get("steps"))),
        ))
    return ValidationResult(tuple(problems), rejected, tuple(journeys), from_cache=True, warnings=tuple(warnings))


def summarise(report: Report, files: Sequence[Path]) -> ValidationResult:
    """A validation report as plain data (the validated ``files`` in the order validation read them)."""
    from engine.language.problems import display_path

    index_of: dict[str, int] = {}
    for i, path in enumerate(files):
        index_of.setdefault(display_path(path), i)
    journeys = []
    for loaded in report.journeys:
        j = loaded.journey
        journeys.append(JourneySummary(
            path=loaded.path, file=index_of[loaded.path], id=j.id, version=loaded.version, category=j.category,
            entry=j.entry.kind, tiers=None if j.audience.tiers is None else tuple(j.audience.tiers),
            steps=tuple(s.kind for s in j.steps),
        ))
    return ValidationResult(
        problems=tuple(ProblemRecord(p.path, p.line, p.column, p.message) for p in report.problems),
        rejected_files=tuple(report.rejected_files),
        journeys=tuple(journeys),
        warnings=tuple(ProblemRecord(p.path, p.line, p.column, p.message) for p in report.warnings),
    )


# --- the key --------------------------------------------------------------------------------------


_HASHED_UP_TO = 16 * 1024 * 1024  # 64 times a journey file's bound; templates are kilobytes


def _file_digest(path: Path) -> str:
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            # A device or a pipe (``/dev/zero`` named as a journey file) is never read: validation
            # refuses it, and reading one may not end.
            return f"special:{stat.S_IFMT(status.st_mode)}"
        if status.st_size > _HASHED_UP_TO:
            # Far past any file's bound (validation refuses it unread): its size and time say enough.
            return f"large:{status.st_size}:{status.st_mtime_ns}"
        with path.open("rb") as handle:  # a chunk at a time: a huge file costs time, not memory
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:  # unreadable or gone: validation reports it, and the key must say so
        return f"unreadable:{type(exc).__name__}:{exc.errno}"


def _tree_digest(folder: Path) -> str:
    """Every file below ``folder``: names and contents (a missing folder has its own digest)."""
    h = hashlib.sha256()
    if not folder.is_dir():
        h.update(b"\0missing")
        return h.hexdigest()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode("utf-8", "surrogateescape"))
            h.update(b"\0" + _file_digest(path).encode() + b"\0")
    return h.hexdigest()


def _module_file(name: str) -> Path:
    base = PROJECT_ROOT.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _code_version() -> str:
    h = hashlib.sha256(sys.version.encode())
    for name in VALIDATOR_MODULES:
        h.update(f"\0{name}\0{_file_digest(_module_file(name))}".encode())
    for library in VALIDATOR_LIBRARIES:
        # A reinstall or upgrade rewrites the package's __init__; locating it imports nothing.
        spec = importlib.util.find_spec(library)
        origin = spec.origin if spec is not None else None
        if origin and os.path.isfile(origin):
            stat = os.stat(origin)
            h.update(f"\0{library}\0{origin}\0{stat.st_mtime_ns}\0{stat.st_size}".encode())
        else:
            h.update(f"\0{library}\0absent".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Inputs:
    """What one validation run reads, and the key that hashes it."""

    paths: tuple[Path, ...] | None
    files: tuple[Path, ...]
    key: str


def inputs(paths: Iterable[Path] | None = None) -> Inputs:
    given = tuple(paths) if paths else None
    files = tuple(journey_files(given if given else [journeys_dir()]))
    templates_root = templates_dir().resolve()
    configuration = config_dir().resolve()
    described = {
        "format": FORMAT,
        "code": _code_version(),
        "cwd": str(Path.cwd().resolve()),
        "paths": None if given is None else [str(p) for p in given],
        "files": [[str(p), str(p.resolve()), _file_digest(p)] for p in files],
        "default_journeys": sorted(str(p.resolve()) for p in journey_files([journeys_dir()])),
        "templates": [str(templates_root), _tree_digest(templates_root)],
        "config": [str(configuration), _tree_digest(configuration)],
    }
    key = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
    return Inputs(given, files, key)


# --- the store ------------------------------------------------------------------------------------


def cache_dir() -> Path | None:
    """Where entries go: ``$JOURNEYS_CACHE_DIR``, else the user's cache folder; None if there is none."""
    configured = os.environ.get(CACHE_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser() / "validation"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg:
        return Path(xdg) / "service-journeys" / "validation"
    try:
        return Path.home() / ".cache" / "service-journeys" / "validation"
    except RuntimeError:  # no home directory: run without a cache
        return None


def _entry_path(key: str) -> Path | None:
    folder = cache_dir()
    return folder / f"{key}.json" if folder is not None else None


def load(found: Inputs) -> ValidationResult | None:
    """The stored result for these inputs, or None when there is none or it is damaged."""
    path = _entry_path(found.key)
    if path is None:
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.info("validation cache entry %s unreadable (%s): validating again", path.name, exc)
        return None
    try:
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or raw.get("key") != found.key:
            raise _BadEntry("not an entry for this key")
        result = _result_from_json(raw.get("result"), len(found.files))
    except _BadEntry as exc:
        log.info("validation cache entry %s damaged (%s): validating again", path.name, exc)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # most recently used: pruning removes the others first
    return result


def store(found: Inputs, result: ValidationResult) -> None:
    """Keep ``result`` for these inputs; a cache that cannot be written is skipped, not an error."""
    path = _entry_path(found.key)
    if path is None:
        return
    entry = {"format": FORMAT, "key": found.key, "result": _result_json(result)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a reader sees the old entry, the new one or none, never half of one.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".entry-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entry, handle, ensure_ascii=False)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _prune(path.parent)
    except OSError as exc:
        log.info("validation cache not written (%s)", exc)


def _prune(folder: Path) -> None:
    entries = []
    for path in folder.glob("*.json"):
        try:
            entries.append((path.stat().st_mtime_ns, path))
        except OSError:
            continue
    for _, path in sorted(entries, reverse=True)[MAX_ENTRIES:]:
        path.unlink(missing_ok=True)


# --- validation through the cache -------------------------------------------------------------------


def _validate(found: Inputs) -> Report:
    from engine.language.validation import validate

    # The enumerated files, not the folders: validation reads exactly what the key hashed.
    return validate(list(found.files) if found.files else found.paths)


def validation_result(paths: Iterable[Path] | None = None, *, use_cache: bool = True) -> ValidationResult:
    """``validate(paths)`` as plain data, from the cache when its inputs are unchanged."""
    found = inputs(paths)
    if use_cache:
        cached = load(found)
        if cached is not None:
            return cached
    result = summarise(_validate(found), found.files)
    store(found, result)
    return result


def validate_cached(paths: Iterable[Path] | None = None) -> Report:
    """``validate(paths)``, without the template renders and cross-checks when a cached verdict holds.

    From a cached entry the journeys are parsed again from their files (their content hash must
    be the one validated) and the configuration files are read again; anything that does not
    match means the entry is not trusted and validation runs in full.
    """
    found = inputs(paths)
    cached = load(found)
    if cached is not None:
        report = _rebuild(found, cached)
        if report is not None:
            return report
    report = _validate(found)
    store(found, summarise(report, found.files))
    return report


def _rebuild(found: Inputs, cached: ValidationResult) -> Report | None:
    from engine.language.journey_model import Journey
    from engine.language.paths import delivery_config_path, tiers_config_path
    from engine.language.problems import Problem, load_config, load_document, parse_model
    from engine.language.settings_model import DeliveryConfig, TierConfig
    from engine.language.validation import LoadedJourney, Report, content_version

    report = Report(problems=[Problem(p.path, p.line, p.column, p.message) for p in cached.problems],
                    warnings=[Problem(p.path, p.line, p.column, p.message) for p in cached.warnings],
                    rejected_files=list(cached.rejected_files))
    for summary in cached.journeys:
        source, doc, problems = load_document(found.files[summary.file])
        if doc is None or problems or content_version(source) != summary.version:
            return None  # changed since the key was taken, or the entry is wrong about it
        journey, problems = parse_model(Journey, doc, summary.path)
        if journey is None or problems or journey.id != summary.id:
            return None
        report.journeys.append(LoadedJourney(journey, summary.path, source, summary.version,
                                             warnings=[w for w in report.warnings if w.path == summary.path]))
    report.tiers, _ = load_config(TierConfig, tiers_config_path())
    report.delivery, _ = load_config(DeliveryConfig, delivery_config_path())
    return report
