"""JSON as RFC 8259 defines it, read from text that came from outside (API bodies, ``--data``).

Python's ``json`` reads more than the standard allows, and what it read used to be stored:

- ``NaN``, ``Infinity`` and ``-Infinity`` became floats that compare false with everything, so a
  condition such as ``event.data.amount >= 1000`` quietly failed, the rules engine refused the
  fact, and the customer was left out of the plan run; stored, they are not JSON any more.
- ``"\\ud800"`` (half of a surrogate pair) became a string no UTF-8 page, log or PostgreSQL
  column can hold, so the task raised from such an event could never be opened.

``strict_loads`` refuses both with a ``json.JSONDecodeError`` saying why; keys are checked as
strings too. Depth is bounded by the parser itself.
"""

from __future__ import annotations

import json
from typing import Any


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotFinite(name)


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a string (key or value) in ``value`` is one UTF-8 cannot encode."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts: list[Any] = [item]
        elif isinstance(item, dict):
            texts = list(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def strict_loads(body: bytes | str) -> Any:
    """``json.loads`` that refuses non-finite numbers and lone surrogates with a ``JSONDecodeError``."""
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except _NotFinite as exc:
        raise _refused(f"{exc} is not a JSON number: write a finite number", body) from None
    if _has_lone_surrogate(value):
        raise _refused("a \\u escape names half of a surrogate pair, which is not a character", body)
    return value


def _refused(reason: str, body: bytes | str) -> json.JSONDecodeError:
    # The body is decoded for the error only: a good request is not copied once more.
    return json.JSONDecodeError(reason, body.decode("utf-8", "replace") if isinstance(body, bytes) else body, 0)
