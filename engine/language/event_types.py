"""Event types as data: ``config/events.yaml`` names each type, its description and typed fields.

The file is read again when it changes (like the work calendar). A file with problems is
reported by ``journeys validate`` at ``file:line`` and the last good version stays in force (the
shipped file when none was good yet), so a typo in it never empties the catalogue under a
running API. ``check_payload`` is the one check of an event's data against its type, for the
API and anything else that takes events from outside.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints, model_validator

from engine.language.faults import raise_faults
from engine.language.paths import PROJECT_ROOT, config_dir
from engine.language.problems import Problem, load_config
from store.clock import out_of_range

FieldKind = Literal["str", "int", "float", "bool", "date", "datetime", "list", "any"]
FIELD_KINDS: tuple[str, ...] = ("str", "int", "float", "bool", "date", "datetime", "list", "any")
TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


# Vocabularies the product words itself (engine.language.template_context): a field holding a tier code says ``tier``.
Vocabulary = Literal["tier", "product_line"]
Word = Annotated[str, StringConstraints(min_length=1, max_length=80)]


class ValueWords(BaseModel):
    """One coded value in both languages the product writes in."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    zh_cn: Word = Field(alias="zh-CN")
    en: Word


class EventTypeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)
    # The words ops and agents see for the type, per console language (zh-CN, en); the console's own
    # catalogue names the built-in types, so a type added here needs no developer to be shown in words.
    label: dict[Literal["zh-CN", "en"], Annotated[str, StringConstraints(min_length=1, max_length=80)]] = Field(
        default_factory=dict)
    fields: dict[str, FieldKind] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    # The words a coded value of a field is shown in (``event.words.<field>`` in templates): per value, or the
    # name of a vocabulary the product already words (tiers, product lines). A call script read out to a
    # customer in Chinese cannot say "severity: high".
    words: dict[str, Vocabulary | dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], ValueWords]] = (
        Field(default_factory=dict))

    @model_validator(mode="after")
    def _required_are_fields(self) -> EventTypeSpec:
        raise_faults([(("required", i), f"required field {name!r} is not one of the fields ({', '.join(self.fields)})")
                      for i, name in enumerate(self.required) if name not in self.fields])
        raise_faults([(("words", name), f"words are given for {name!r}, which is not one of the fields "
                                        f"({', '.join(self.fields) or 'none'})")
                      for name in self.words if name not in self.fields])
        return self


TypeName = Annotated[str, StringConstraints(pattern=TYPE_PATTERN, max_length=64)]


class EventTypesConfig(RootModel[dict[TypeName, EventTypeSpec]]):
    """The whole file: event type (its top-level keys) → spec."""


def events_path() -> Path:
    return config_dir() / "events.yaml"


# Where the types come from when the configuration folder has no events.yaml of its own.
SHIPPED_PATH = PROJECT_ROOT / "config" / "events.yaml"


def load_event_types(path: Path | None = None) -> tuple[dict[str, EventTypeSpec] | None, list[Problem]]:
    """Read and check the file (``config/events.yaml`` by default)."""
    path = path or events_path()
    if not path.is_file():
        path = SHIPPED_PATH
    config, problems = load_config(EventTypesConfig, path)
    return (config.root if config is not None else None), problems


@dataclass
class _Loaded:
    stamp: tuple[str, int, int]
    types: dict[str, EventTypeSpec]


_loaded: _Loaded | None = None


def current() -> dict[str, EventTypeSpec]:
    """The types in force: the file's, re-read when it changes; the last good ones while it is broken."""
    global _loaded
    path = events_path()
    if not path.is_file():
        path = SHIPPED_PATH
    try:
        stat = path.stat()
        stamp = (str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = (str(path), 0, 0)
    if _loaded is not None and _loaded.stamp == stamp:
        return _loaded.types
    types, _ = load_event_types(path)
    if types is None:
        if _loaded is not None:
            return _loaded.types
        types, _ = load_event_types(SHIPPED_PATH)
        types = types or {}
    _loaded = _Loaded(stamp, types)
    return types


EventWords = Mapping[str, Vocabulary | Mapping[str, ValueWords]]


def words_of(event_type: str, types: Mapping[str, EventTypeSpec] | None = None) -> EventWords:
    """The ``words`` of ``event_type`` in ``types`` (those in force when not given); empty for a type not in them."""
    spec = (current() if types is None else types).get(event_type)
    return spec.words if spec is not None else {}


def value_words(name: str, value: str, event_type: str | None = None) -> Vocabulary | ValueWords | None:
    """How a coded ``value`` of the data field ``name`` reads, by the types in force: the vocabulary that words
    it (``tier``, ``product_line``) or its words; None when the file gives none. Without ``event_type`` (a
    condition on ``event.data.<name>`` names no type) the words of any type that has them, if all agree."""
    types = current()
    specs = [types[event_type]] if event_type is not None and event_type in types else (
        [] if event_type is not None else list(types.values()))
    found: set[Vocabulary | ValueWords] = set()
    for spec in specs:
        words = spec.words.get(name)
        if isinstance(words, str):
            found.add(words)
        elif words is not None and value in words:
            found.add(words[value])
    return found.pop() if len(found) == 1 else None


class FieldsByType(Mapping[str, dict[str, FieldKind]]):
    """Event type → {data field: kind}, always of the file in force (what journeys may read)."""

    def __getitem__(self, key: str) -> dict[str, FieldKind]:
        return dict(current()[key].fields)

    def __iter__(self) -> Iterator[str]:
        return iter(current())

    def __len__(self) -> int:
        return len(current())

    def __contains__(self, key: object) -> bool:
        return key in current()


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "list": (list,),
}


def check_payload(event_type: str, data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for each way ``data`` does not fit ``event_type``; empty when it fits.

    Fields the type does not declare are refused too: a misspelt field would otherwise be
    stored and never read by any journey."""
    spec = current().get(event_type)
    if spec is None:
        return [("type", f"unknown event type {event_type!r}; known: {', '.join(sorted(current()))}")]
    problems: list[tuple[str, str]] = []
    for name in spec.required:
        if data.get(name) is None:
            problems.append((f"data.{name}", f"data.{name} is required for {event_type} ({spec.fields[name]})"))
    for name, item in data.items():
        kind = spec.fields.get(name)
        if kind is None:
            known = ", ".join(spec.fields) or "none"
            problems.append((f"data.{name}", f"data.{name} is not a field of {event_type} (fields: {known})"))
            continue
        if item is None or kind == "any":
            continue
        if kind in ("date", "datetime"):
            try:
                parsed = (date if kind == "date" else datetime).fromisoformat(str(item))
            except ValueError:
                problems.append((f"data.{name}", f"data.{name} must be an ISO {kind}"))
                continue
            wrong = out_of_range(parsed)
            if wrong:
                problems.append((f"data.{name}", f"data.{name} {str(item)!r} {wrong}"))
            continue
        allowed = _PYTHON_TYPES[kind]
        # bool is an int in Python; a survey score of ``true`` is still a mistake.
        if not isinstance(item, allowed) or (kind in ("int", "float") and isinstance(item, bool)):
            problems.append((f"data.{name}", f"data.{name} must be of type {kind}, not {type(item).__name__}"))
    return problems
