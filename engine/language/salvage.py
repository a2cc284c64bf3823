"""Every problem of a journey file in one pass: a file whose shape is wrong is still checked.

When a journey file does not fit the model, ``validate`` would otherwise stop at the shape errors
and the author would meet the next mistake (an unknown tier, a wrong goto, a missing template)
only after fixing those. Here the parts at fault are set aside: a step with an error becomes a
plain placeholder step under its own id (so gotos to it still resolve), an optional top-level
field with an error is left out, a required one gets a neutral stand-in. What then parses is
checked like any journey; the findings that only the stand-ins could cause are left out
(``Salvaged.trusts``). Nothing salvaged is ever put in force: the file is rejected all the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from engine.language.journey_model import Journey

_STAND_INS: dict[str, Any] = {
    "id": "salvaged", "name": "salvaged", "category": "service", "entry": {"schedule": {"cron": "0 10 * * *"}},
    "steps": [{"id": "salvaged", "exit": {}}],
}
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class Salvaged:
    journey: Journey
    replaced: frozenset[str]  # top-level fields set aside or stood in for
    steps_replaced: bool

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
    patched = dict(data)
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
    return Salvaged(journey, frozenset(replaced), bool(bad_steps))


def _placeholder(step: Any, index: int) -> dict[str, Any]:
    step_id = step.get("id") if isinstance(step, dict) else None
    if not isinstance(step_id, str) or not _ID.match(step_id):
        step_id = f"salvaged-{index}"
    return {"id": step_id, "wait": "1m"}
