"""Reading the files ops edit into models, with every problem at its ``path:line:col``.

The ground both checkers stand on: ``engine.language.validation`` (journeys and the
configuration files) and ``engine.language.template_check`` report ``Problem``s, and the
delivery configuration read here also gives the marketing footer its text.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from engine.language import journey_model
from engine.language.yaml_lines import LocatedDocument, Path_, YamlError, load_located

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
    """Paths as a person typed them: relative to the working directory when possible."""
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
        elif isinstance(node, dict) and isinstance(part, str) and part not in node and part == loc[-1]:
            out.append(part)  # a missing or unknown key: the position falls back to its parent
            node = None
    return tuple(out)


def _message(error: Any) -> str:
    kind = error["type"]
    loc = error["loc"]
    name = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        hint = difflib.get_close_matches(str(name), sorted(_ALL_FIELD_NAMES), n=1, cutoff=0.75)
        return f"unknown field {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    if kind == "missing":
        return f"missing required field {name!r}"
    msg = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if kind.endswith(("_type", "_parsing")):
        got = error.get("input")
        msg = f"wrong type for {name!r}: {msg[:1].lower() + msg[1:]} (got {got!r})"
    elif kind == "literal_error":
        msg = f"{error.get('input')!r} is not allowed for {name!r}: {msg.lower()}"
    elif kind == "string_pattern_mismatch":
        msg = f"{error.get('input')!r} is not a valid {name!r}: use lowercase letters, digits, '-' and '_'"
    return msg


def parse_model(model: type[ModelT], doc: LocatedDocument, path: str) -> tuple[ModelT | None, list[Problem]]:
    try:
        return model.model_validate(doc.data), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            data_path = _data_path(doc, tuple(error["loc"]))
            pos = doc.position(data_path, prefer_key=error["type"] in ("extra_forbidden",))
            problems.append(Problem(path, pos.line, pos.column, _message(error)))
        return None, sorted(set(problems))


def load_document(path: Path) -> tuple[str, LocatedDocument | None, list[Problem]]:
    shown = display_path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return "", None, [Problem(shown, 1, 1, f"not UTF-8 text: {exc.reason}")]
    except OSError as exc:
        return "", None, [Problem(shown, 1, 1, f"cannot read: {exc.strerror}")]
    try:
        doc = load_located(source)
    except YamlError as exc:
        return source, None, [Problem(shown, exc.position.line, exc.position.column, exc.message)]
    if not isinstance(doc.data, dict):
        return source, None, [Problem(shown, 1, 1, "expected a mapping at the top of the file")]
    return source, doc, []


def load_config(model: type[ModelT], path: Path) -> tuple[ModelT | None, list[Problem]]:
    if not path.is_file():
        return None, [Problem(display_path(path), 1, 1, "configuration file not found")]
    _, doc, problems = load_document(path)
    if doc is None:
        return None, problems
    return parse_model(model, doc, display_path(path))
