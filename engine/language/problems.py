"""Reading the files ops edit into models, with every problem at its ``path:line:col``.

The ground both checkers stand on: ``engine.language.validation`` (journeys and the
configuration files) and ``engine.language.template_check`` report ``Problem``s, and the
delivery configuration read here also gives the marketing footer its text.
"""

from __future__ import annotations

import difflib
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from engine.language import journey_model
from engine.language.faults import ValuesAtFault, data_path
from engine.language.shape_hints import mapping_hint, value_hint
from engine.language.yaml_lines import MAX_BYTES, LocatedDocument, Path_, YamlError, load_located

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


def display_path(path: Path) -> str:
    """Paths as a person typed them: relative to the working directory when possible. Two ``realpath`` walks:
    the readers below call it only for a problem (every landing reads some 400 files that have none)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --- turning pydantic errors into file:line messages --------------------------------------------

_ALL_FIELD_NAMES: set[str] = set()
for _model in (
    vars(journey_model).values()
):  # every field name of the journey language, for "did you mean" hints
    if isinstance(_model, type) and issubclass(_model, BaseModel) and _model is not BaseModel:
        for _name, _info in _model.model_fields.items():
            _ALL_FIELD_NAMES.add(_info.alias or _name)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models an annotation may hold (through ``X | None``, ``list[X]``, ``Annotated``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models_in(arg)


# Field name → the field names of the model it holds (``send`` → channels, template, urgent), so
# that a key indented one level too shallow can be told where it belongs.
_FIELDS_UNDER: dict[str, set[str]] = {}
for _model in list(vars(journey_model).values()):
    if isinstance(_model, type) and issubclass(_model, BaseModel) and _model is not BaseModel:
        for _name, _info in _model.model_fields.items():
            for _held in _models_in(_info.annotation):
                _FIELDS_UNDER.setdefault(_info.alias or _name, set()).update(
                    f.alias or n for n, f in _held.model_fields.items())


def _belongs_under(doc: LocatedDocument, loc: tuple[Any, ...]) -> str | None:
    """The sibling key an unknown key belongs under (``channels`` beside ``send:``), if any."""
    name = loc[-1] if loc else None
    node: Any = doc.data
    for part in _data_path(doc, loc)[:-1]:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            node = node[part]
    if not isinstance(node, dict) or not isinstance(name, str):
        return None
    for sibling in node:
        if sibling != name and name in _FIELDS_UNDER.get(str(sibling), ()) and not isinstance(node[sibling], list):
            return str(sibling)
    return None


def _data_path(doc: LocatedDocument, loc: tuple[Any, ...]) -> Path_:
    """Keep the parts of a pydantic ``loc`` that index into the data (drops union/model tags)."""
    out: list[str | int] = []
    node: Any = doc.data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part not in node and part == loc[-1] \
                and part != "[key]":
            out.append(part)  # a missing or unknown key: the position falls back to its parent
            node = None
    return tuple(out)


# A number or a length out of its bounds: pydantic's message does not name the field.
_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long",
           "string_too_short", "string_too_long")


def _message(error: Any) -> str:
    kind = error["type"]
    loc = error["loc"]
    name = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        hint = difflib.get_close_matches(str(name), sorted(_ALL_FIELD_NAMES - {str(name)}), n=1, cutoff=0.75)
        return f"unknown field {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    if kind == "missing":
        return f"missing required field {name!r}"
    msg = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if kind.endswith(("_type", "_parsing")):
        got = error.get("input")
        shape = (mapping_hint(msg, got) if kind in ("model_type", "dict_type", "model_attributes_type")
                else value_hint(str(name), got))
        if shape is not None:
            return f"wrong type for {name!r} (got {got!r}): {shape}"
        msg = f"wrong type for {name!r}: {msg[:1].lower() + msg[1:]} (got {got!r})"
    elif kind in _BOUNDS and isinstance(name, str) and name != "[key]":
        msg = f"{name!r}: {msg[:1].lower() + msg[1:]} (got {error.get('input')!r})"
    elif kind == "literal_error":
        msg = f"{error.get('input')!r} is not allowed for {name!r}: {msg.lower()}"
    elif kind == "string_pattern_mismatch":
        what = "name" if name == "[key]" else repr(name)
        pattern = str((error.get("ctx") or {}).get("pattern", ""))
        if pattern == journey_model.IDENTIFIER_PATTERN:
            msg = f"{error.get('input')!r} is not a valid {what}: use lowercase letters, digits, '-' and '_'"
        else:
            msg = f"{error.get('input')!r} is not a valid {what}: it must match {pattern}"
    return msg


# Errors that only say "this form of a union did not fit": when another form of the same union
# gets further (a value error inside it), its error is the one the author needs.
_SHAPE_ERRORS = ("literal_error", "string_type", "list_type", "dict_type", "model_type", "model_attributes_type",
                 "bool_type", "int_type", "float_type", "union_tag_invalid")


def _union_prefix(loc: tuple[Any, ...], data_path: Path_) -> tuple[Any, ...] | None:
    """The part of ``loc`` before its first union tag (a part that is no key of the data), or None."""
    kept = 0
    for i, part in enumerate(loc):
        if kept < len(data_path) and part == data_path[kept]:
            kept += 1
            continue
        if isinstance(part, str) and ("[" in part or "-" in part or part[:1].isupper()):
            return tuple(loc[:i])
    return None


def _specific_errors(doc: LocatedDocument, errors: list[Any]) -> list[Any]:
    """``errors`` without the shape errors of union forms another form of the same union explains."""
    explained: set[tuple[Any, ...]] = set()
    for error in errors:
        prefix = _union_prefix(tuple(error["loc"]), _data_path(doc, tuple(error["loc"])))
        if prefix is not None and error["type"] not in _SHAPE_ERRORS:
            explained.add(prefix)
    return [e for e in errors if e["type"] not in _SHAPE_ERRORS
            or _union_prefix(tuple(e["loc"]), _data_path(doc, tuple(e["loc"]))) not in explained]


def _value_at(data: Any, path: Path_) -> Any:
    for part in path:
        inside = (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data))
        if not inside:
            return None
        data = data[part]
    return data


def _fault_problems(doc: LocatedDocument, path: str, loc: tuple[Any, ...], faults: ValuesAtFault) -> Iterator[
        tuple[Path_, Problem]]:
    """A model's own checks, each at the value it names below the model's place (a mapping or list
    at fault at its key's line: ``weights:`` for weights that do not add up)."""
    for where, message in faults.faults:
        data_path = _data_path(doc, (*loc, *where))
        whole = isinstance(_value_at(doc.data, data_path), dict | list)
        pos = doc.position(data_path, prefer_key=whole)
        yield data_path, Problem(path, pos.line, pos.column, message)


def _without(data: Any, paths: list[Path_]) -> Any:
    """A copy of ``data`` without the values at ``paths`` (each a key of a mapping or item of a list)."""
    if not paths:
        return data
    heads = {p[0] for p in paths if len(p) == 1}
    below: dict[Any, list[Path_]] = {}
    for p in paths:
        if len(p) > 1:
            below.setdefault(p[0], []).append(p[1:])
    if isinstance(data, dict):
        return {k: _without(v, below.get(k, [])) for k, v in data.items() if k not in heads}
    if isinstance(data, list):
        return [_without(v, below.get(i, [])) for i, v in enumerate(data) if i not in heads]
    return data


def _related(a: Path_, b: Path_) -> bool:
    return a[:len(b)] == b or b[:len(a)] == a


SET_ASIDE_ROUNDS = 4  # setting a value aside may empty the list or mapping holding it: that goes next


def _checks_past_field_errors(model: type[BaseModel], doc: LocatedDocument, path: str,
                              set_aside: list[Path_]) -> list[Problem]:
    """The model's own checks once the values with field errors are set aside: pydantic runs a
    model validator only on fields that parsed, so a bad duration would hide that the weights do
    not add up. A finding about a value set aside (or one holding it) is the setting aside's doing."""
    found: list[Problem] = []
    gone = list(set_aside)
    for _ in range(SET_ASIDE_ROUNDS):
        data = _without(doc.data, gone)
        try:
            model.model_validate(data)
            break
        except ValidationError as exc:
            errors = list(exc.errors())
        more = []
        for error in errors:
            faults = (error.get("ctx") or {}).get("error")
            if isinstance(faults, ValuesAtFault):
                found += [problem for where, problem in _fault_problems(doc, path, tuple(error["loc"]), faults)
                          if not any(_related(where, g) for g in gone)]
            elif (where := data_path(data, tuple(error["loc"]))) and where not in gone:
                more.append(where)  # what the setting aside left wrong (an empty list): set it aside too
        if not more:
            break
        gone += more
    return sorted(set(found))


def parse_model(model: type[ModelT], doc: LocatedDocument, path: str) -> tuple[ModelT | None, list[Problem]]:
    try:
        return model.model_validate(doc.data), []
    except ValidationError as exc:
        problems = []
        set_aside: list[Path_] = []
        for error in _specific_errors(doc, list(exc.errors())):
            faults = (error.get("ctx") or {}).get("error")
            if isinstance(faults, ValuesAtFault):
                problems += [problem for _, problem in _fault_problems(doc, path, tuple(error["loc"]), faults)]
                if error["loc"]:  # a part at fault: the checks of the whole it belongs to are run without it
                    set_aside.append(_data_path(doc, tuple(error["loc"])))
                continue
            data_path = _data_path(doc, tuple(error["loc"]))
            if data_path and _value_at(doc.data, data_path) is not None:
                set_aside.append(data_path)
            # A mapping key at fault ("[key]" in pydantic's loc) is shown where the key stands.
            pos = doc.position(data_path, prefer_key=error["type"] in ("extra_forbidden",) or "[key]" in error["loc"])
            message = _message(error)
            if error["type"] == "extra_forbidden" and (parent := _belongs_under(doc, tuple(error["loc"]))):
                key = error["loc"][-1]
                message = f"`{key}` belongs under `{parent}:` (indent it two spaces more, below `{parent}:`)"
            problems.append(Problem(path, pos.line, pos.column, message))
        if set_aside and model is not journey_model.Journey:  # a journey has its own (engine.language.salvage)
            problems += _checks_past_field_errors(model, doc, path, set_aside)
        return None, sorted(set(problems))


class TooLarge(Exception):
    """A file that is not read: larger than a journey or setting file may be, or no file at all."""


def read_bounded(path: Path, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of ``path``, having read at most ``limit`` + 1 bytes of it: a file someone
    points ``validate`` at may be a 10 GB log, ``/dev/zero`` or a pipe, and its text is kept whole in
    memory. Raises TooLarge, UnicodeDecodeError or OSError."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        # A device or a pipe: reading one may never end (and opening a pipe waits for its writer).
        raise TooLarge("not a regular file")
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"file larger than {limit // 1024} KB")
    return data.decode("utf-8")


def read_source(path: Path) -> tuple[str | None, Problem | None]:
    """The text of a file ops edit (a journey, a setting, a template), or the problem that keeps it
    from being read: larger than the bound, no regular file, not UTF-8 (at the first byte that is
    not), unreadable. Every reader of such a file goes through here, so none ends in a traceback."""
    try:
        return read_bounded(path), None
    except TooLarge as exc:
        return None, Problem(display_path(path), 1, 1, str(exc))
    except UnicodeDecodeError as exc:
        # Where the first byte that is not UTF-8 stands (a file saved as GBK, a stray Latin-1 é).
        raw = bytes(exc.object)
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, Problem(display_path(path), line, column,
                             f"not UTF-8 text: byte 0x{raw[exc.start]:02x} ({exc.reason}); save the file as UTF-8")
    except OSError as exc:
        return None, Problem(display_path(path), 1, 1, f"cannot read: {exc.strerror}")


def load_document(path: Path) -> tuple[str, LocatedDocument | None, list[Problem]]:
    source, unread = read_source(path)
    if source is None:
        assert unread is not None
        return "", None, [unread]
    try:
        doc = load_located(source)
    except YamlError as exc:
        return source, None, [Problem(display_path(path), exc.position.line, exc.position.column, exc.message)]
    if not isinstance(doc.data, dict):
        return source, None, [Problem(display_path(path), 1, 1, "expected a mapping at the top of the file")]
    return source, doc, []


def load_config(model: type[ModelT], path: Path, *, optional: bool = False) -> tuple[ModelT | None, list[Problem]]:
    """The file as ``model``, or the problems that stop it; an ``optional`` file may be absent: the defaults."""
    if not path.is_file():
        if optional:
            return model(), []
        return None, [Problem(display_path(path), 1, 1, "configuration file not found")]
    _, doc, problems = load_document(path)
    if doc is None:
        return None, problems
    return parse_model(model, doc, display_path(path))
