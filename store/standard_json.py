"""JSON as RFC 8259 defines it, read from text that came from outside (API bodies, ``--data``).

Python's ``json`` reads more than the standard allows, and what it read used to be stored:

- ``NaN``, ``Infinity`` and ``-Infinity`` became floats that compare false with everything, so a
  condition such as ``event.data.amount >= 1000`` quietly failed, the rules engine refused the
  fact, and the customer was left out of the plan run; stored, they are not JSON any more.
- ``"\\ud800"`` (half of a surrogate pair) became a string no UTF-8 page, log or PostgreSQL
  column can hold, so the task raised from such an event could never be opened.

- A name twice in one object (``{"event_id": "e1", "event_id": "e2"}``) was read as its last value,
  where another reader of the same text (a gateway, the sender's own log) takes the first: RFC 8259
  leaves such an object's meaning open, so it is refused rather than guessed.

``strict_loads`` refuses all three with a ``json.JSONDecodeError`` saying why; keys are checked as
strings too. So it does a value nested deeper than ``MAX_DEPTH``: Python's parser recurses, and
100,000 ``[`` ended in a RecursionError (a traceback in the CLI, a 500 from the API), while a value
a few hundred levels deep was read and then failed wherever it was next written out.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotFinite(name)


class _OutOfRange(ValueError):
    pass


class _Repeated(ValueError):
    pass


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for name, _item in pairs:
            if name in seen:
                raise _Repeated(name[:40])
            seen.add(name)
    return value


def _finite_float(text: str) -> float:
    # Python reads 1e400 as inf, which the store then writes as the non-standard Infinity (PostgreSQL
    # refuses it in jsonb: a 500); a number past a double's range is refused like Infinity itself.
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfRange(text[:40])
    return value


# The largest whole number kept: a double's range, as for 1e400. Python reads a whole number of up to
# 4,300 digits (longer is a ValueError: the API's bare 400), and jsonb stores it; read as a float (an
# event's amount is a float field) it raises OverflowError.
_LARGEST_WHOLE = int(sys.float_info.max)
_WHOLE_DIGITS = len(str(_LARGEST_WHOLE))


def _bounded_int(text: str) -> int:
    # Its length first: int() of 100,000 digits costs time before it would fail.
    if len(text.lstrip("-")) > _WHOLE_DIGITS or abs(value := int(text)) > _LARGEST_WHOLE:
        raise _OutOfRange(text[:40] + ("..." if len(text) > 40 else ""))
    return value


MAX_DEPTH = 64  # an event's data is a few levels deep; the journey and setting files have the same bound


def _fault(value: Any) -> str | None:
    """Why ``value`` is no standard JSON we keep: too deeply nested, or a string (key or value)
    UTF-8 cannot encode; None when it is fine."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list) and depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, str):
            texts: list[Any] = [item]
        elif isinstance(item, dict):
            texts = list(item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
            continue
        else:
            continue
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return "a \\u escape names half of a surrogate pair, which is not a character"
    return None


def strict_loads(body: bytes | str) -> Any:
    """``json.loads`` that refuses non-finite numbers, lone surrogates and repeated names with a ``JSONDecodeError``;
    bytes must be UTF-8 (RFC 8259 §8.1; a leading byte order mark is passed over, as the RFC allows)."""
    if isinstance(body, bytes):
        # Decoded here, not left to json.loads, which guesses UTF-16 or UTF-32 from the first bytes: GBK from a
        # system on Chinese Windows, or Latin-1, was refused by FastAPI as "There was an error parsing the body".
        raw = body
        try:
            body = raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start:exc.start + 1].hex().upper()
            raise _refused(f"the text is not UTF-8: its byte {exc.start + 1} (0x{bad}) is not UTF-8; send JSON "
                           "encoded in UTF-8", raw) from None
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int,
                           object_pairs_hook=_unique_names)
    except _NotFinite as exc:
        raise _refused(f"{exc} is not a JSON number: write a finite number", body) from None
    except _OutOfRange as exc:
        raise _refused(f"{exc} is past the range of a number (about 1.8e308): write a finite number", body) from None
    except _Repeated as exc:
        raise _refused(f"the name {str(exc)!r} appears twice in one object: give each name once", body) from None
    except RecursionError:
        raise _refused(f"nested deeper than {MAX_DEPTH} levels", body) from None
    fault = _fault(value)
    if fault is not None:
        raise _refused(fault, body)
    return value


def _refused(reason: str, body: bytes | str) -> json.JSONDecodeError:
    return json.JSONDecodeError(reason, body.decode("utf-8", "replace") if isinstance(body, bytes) else body, 0)
