"""A model's own checks (``model_validator``) naming the value at fault, and every one of them.

Pydantic places an error raised in a model validator at the model itself, so a check across
fields (weights adding up to 1, thresholds falling tier by tier, a time zone) would be reported at
the first line of the file or of its mapping, and only the first such problem would be. A
validator collects ``(path, message)`` pairs instead, the path relative to the model and written
as in the file (aliases, mapping keys, list indexes), and raises them together as
``ValuesAtFault``; ``engine.language.problems.parse_model`` reports each at its own line.
``data_path`` maps a pydantic error's ``loc`` onto the data read, for the checks that set a
value at fault aside (problems, salvage).
"""

from __future__ import annotations

from typing import Any

Fault = tuple[tuple[str | int, ...], str]


class ValuesAtFault(ValueError):
    """Every problem a model validator found, each at the path of the value at fault."""

    def __init__(self, faults: list[Fault]) -> None:
        # Read without parse_model (a model built in code), the message still names every problem.
        super().__init__("; ".join(message for _, message in faults))
        self.faults = faults


def raise_faults(faults: list[Fault]) -> None:
    if faults:
        raise ValuesAtFault(faults)


def data_path(data: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """The parts of a pydantic ``loc`` that index into ``data`` (union and model tags dropped)."""
    out: list[str | int] = []
    for part in loc:
        inside = (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data))
        if inside:
            out.append(part)
            data = data[part]
    return tuple(out)
