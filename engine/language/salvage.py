"""Every problem of a journey file in one pass: a file whose shape is wrong is still checked.

When a journey file does not fit the model, ``validate`` would otherwise stop at the shape errors
and the author would meet the next mistake (an unknown tier, a wrong goto, a missing template)
only after fixing those. Here the parts at fault are set aside, the smallest first: a bad value is
left out (or, where the field is required, given a neutral stand-in) so that the rest of its step
or entry is still checked (a bad ``timeout`` does not hide an ``on_timeout`` naming no step, a bad
``offset`` does not take the policy out of scope); only when that does not help does a step with an
error become a plain placeholder step under its own id (so gotos to it still resolve), an optional
top-level field with an error is left out, a required one gets a neutral stand-in. What then parses
is checked like any journey; the findings that only the stand-ins could cause are left out
(``Salvaged.trusts``, and validation drops what it finds at a value stood in for). Nothing salvaged
is ever put in force: the file is rejected all the same.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from engine.language.faults import data_path
from engine.language.journey_model import Journey, Step

_STAND_INS: dict[str, Any] = {
    "id": "salvaged", "name": "salvaged", "category": "service", "entry": {"schedule": {"cron": "0 10 * * *"}},
    "steps": [{"id": "salvaged", "exit": {}}],
}
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# Tried in turn for a value that is at fault, when leaving it out does not do: a duration, a goto,
# a time of day, a number, a switch, a name. The first that the model takes stands in for it.
_LEAF_STAND_INS: tuple[Any, ...] = ("1d", "next", "10:00", 1, True, "salvaged")
# Keys whose stand-in could change where a step leads (so which steps are reached).
_TARGETS = frozenset({"next", "goto", "on_event", "on_timeout", "otherwise"})
MAX_LEAF_ERRORS = 50  # each value set aside costs a few validations; a file this broken is shown its first

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Salvaged:
    journey: Journey
    replaced: frozenset[str]  # top-level fields set aside or stood in for
    steps_replaced: bool
    stood_in: frozenset[Path_] = frozenset()  # values left out or stood in for, where they were

    def trusts(self, message: str) -> bool:
        """Whether a finding on the salvaged journey can stand (not caused by a stand-in)."""
        if self.steps_replaced and "never reached" in message:
            return False  # a placeholder step goes on to the next one, whatever the original did
        # The stand-in entry has no policy, claim or event in scope.
        return not (self.replaced & {"entry", "audience"} and "not available here" in message)


def salvage(data: dict[str, Any]) -> Salvaged | None:
    """The journey ``data`` describes once its parts at fault are set aside; None when that fails."""
    try:
        Journey.model_validate(data)
        return None  # nothing to salvage: the file is valid
    except ValidationError as exc:
        errors = exc.errors()
    patched, stood_in, errors = _set_aside_values(data, errors)
    replaced: set[str] = set()
    bad_steps: set[int] = set()
    for error in errors:
        loc = error["loc"]
        if not loc:
            return None
        head = loc[0]
        if head == "steps" and len(loc) > 1 and isinstance(loc[1], int):
            bad_steps.add(loc[1])
        elif isinstance(head, str):
            replaced.add(head)
    for key in replaced:
        if key in _STAND_INS:
            patched[key] = _STAND_INS[key]
        else:
            patched.pop(key, None)
    steps = patched.get("steps")
    if bad_steps and isinstance(steps, list):
        patched["steps"] = [_placeholder(step, i) if i in bad_steps else step for i, step in enumerate(steps)]
    try:
        journey = Journey.model_validate(patched)
    except ValidationError:
        return None
    moved_targets = any(p and p[0] == "steps" and p[-1] in _TARGETS for p in stood_in)
    return Salvaged(journey, frozenset(replaced), bool(bad_steps) or moved_targets, frozenset(stood_in))


@functools.cache
def _adapter(head: str) -> TypeAdapter[Any]:
    """The model of one part of a journey: a step, or a top-level field."""
    if head == "steps":
        return TypeAdapter(Step)
    field = Journey.model_fields[head]
    annotation: Any = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
    return TypeAdapter(annotation)


def _error_paths(data: Any, part: Path_) -> list[Path_]:
    """Where ``data``'s ``part`` (a step, or a top-level field) is at fault: only that part is
    validated, so that setting aside values costs their step, not the whole journey, each time."""
    value: Any = data
    for key in part:
        value = value[key]
    try:
        _adapter(str(part[0])).validate_python(value)
        return []
    except ValidationError as exc:
        return [(*part, *data_path(value, tuple(e["loc"]))) for e in exc.errors()]


def _under(path: Path_, prefix: Path_) -> bool:
    return path[:len(prefix)] == prefix


def _set_aside_values(data: dict[str, Any], errors: list[Any]) -> tuple[dict[str, Any], list[Path_], list[Any]]:
    """``data`` with each value at fault left out or stood in for, where that alone clears its
    errors and adds none; the paths so treated; the errors that remain."""
    patched = copy.deepcopy(data)
    paths = sorted({data_path(data, tuple(e["loc"])) for e in errors[:MAX_LEAF_ERRORS]}, key=len, reverse=True)
    stood_in: list[Path_] = []
    for path in paths:
        part = path[:2] if path[:1] == ("steps",) else path[:1]
        if len(path) <= len(part) or str(part[0]) not in Journey.model_fields:
            continue  # a whole step or top-level field: the coarser salvage below takes it
        remaining = _error_paths(patched, part)
        if not any(_under(p, path) for p in remaining):
            continue  # already cleared with another value
        parent: Any = patched
        for step in path[:-1]:
            parent = parent[step]
        key, original = path[-1], parent[path[-1]]
        if isinstance(original, dict) and _CONDITION_KEYS.issuperset(original):
            # A condition whose own shape is wrong (``op: in`` without a list): stood in for on its own, so
            # that the other conditions and targets of its step are still checked.
            candidates: list[Any] = [_CONDITION_STAND_IN]
        elif isinstance(original, dict | list):
            continue  # a value, not a part of the journey: the coarser salvage below takes it
        else:
            candidates = ([_LEFT_OUT] if isinstance(parent, dict) else []) + list(_LEAF_STAND_INS)
        for candidate in candidates:
            if candidate is _LEFT_OUT:
                del parent[key]
            else:
                parent[key] = candidate
            after = _error_paths(patched, part)
            if len(after) < len(remaining) and not set(after) - set(remaining):  # fewer errors, none new
                stood_in.append(path)
                break
            parent[key] = original  # restores a left-out key too (at the end of the mapping: order is no matter)
    try:
        Journey.model_validate(patched)
        left: list[Any] = []
    except ValidationError as exc:
        left = exc.errors()
    return patched, stood_in, left


_LEFT_OUT = object()
_CONDITION_KEYS = frozenset({"field", "op", "value", "all", "any", "not"})
_CONDITION_STAND_IN = {"field": "customer.tier", "op": "exists"}


def _placeholder(step: Any, index: int) -> dict[str, Any]:
    step_id = step.get("id") if isinstance(step, dict) else None
    if not isinstance(step_id, str) or not _ID.match(step_id):
        step_id = f"salvaged-{index}"
    return {"id": step_id, "wait": "1m"}
