"""WeChat's limits on the values of a template message, by the type its field's name starts with.

WeChat names a template's fields by type and position (``thing1``, ``character_string2``,
``phrase3``) and refuses a send whose value breaks the type's limit (errcode 47003, "argument
invalid"), whatever the customer. Measured when a template is rendered, a value over its limit is
a render error at the field's line (``journeys validate`` with the sample data, dispatch with the
customer's) instead of a refusal by WeChat at send time. Fields with no type in their name (the
older ``first``, ``keyword1``, ``remark``) have no documented limit and are not measured.

The limits, in characters, as WeChat's table of parameter types gives them: thing 20;
number, letter and character_string 32; symbol 5; phone_number 17; car_number 8; phrase 5;
name 10 Chinese characters or 20 letters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

__all__ = ["FIELD_LIMITS", "field_problem", "field_problems"]

FIELD_LIMITS: dict[str, int] = {
    "thing": 20,
    "number": 32,
    "letter": 32,
    "character_string": 32,
    "symbol": 5,
    "phone_number": 17,
    "car_number": 8,
    "phrase": 5,
    "name": 20,
}
_NAME_CJK_LIMIT = 10
# Longest prefixes first: "phone_number1" is a phone number, not a number.
_TYPED = re.compile(r"(" + "|".join(sorted(FIELD_LIMITS, key=len, reverse=True)) + r")\d*")


def field_problem(field: str, value: str) -> str | None:
    """Why WeChat would refuse ``value`` in ``field``, in words; None when it keeps to the type's limit."""
    match = _TYPED.fullmatch(field)
    if match is None:
        return None
    kind = match.group(1)
    limit = FIELD_LIMITS[kind]
    if kind == "name" and not value.isascii():
        limit = _NAME_CJK_LIMIT
    if len(value) <= limit:
        return None
    return (f"{len(value)} characters, more than the {limit} WeChat takes in a {kind} field "
            "(it refuses the send with errcode 47003): shorten the text or the variable it shows")


def field_problems(data: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """``(field, problem)`` for each value of a template message's ``data`` that breaks its type's limit."""
    for field, value in data.items():
        problem = field_problem(field, value)
        if problem is not None:
            yield field, problem
