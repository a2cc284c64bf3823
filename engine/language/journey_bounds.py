"""The bounds of every number and duration a journey file gives, in one place.

Each field takes only values a journey can mean: a value outside is refused by validate at its own
line (``file:line:col``), never found out when the planner or the dispatcher acts on it. A cap of
``count: 0`` dropped every message of its journey when sent; a task due in ten years sat in the
desk's queues with a warning time the SLA clock cannot reckon (it looks at most 800 days ahead).

Durations besides these take the language's own bound (100 years, ``engine.language.durations``):
offsets and waits count from anchors as far apart as a policy's start and its expiry.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from engine.language.durations import format_duration, parse_duration

# Numbers are taken as written (strict): ``count: "3"`` or ``priority: true`` is a mistake, not a number.
PRIORITY_MAX = 100
# A journey's own cap limits its messages to one customer; past this it limits nothing anyone meant.
CAP_COUNT_MAX = 100
# A rolling window longer than a year is a once-ever rule: that is ``reentry``'s to say.
CAP_WINDOW_MAX = timedelta(days=366)
# A task's time to be done: an SLA of a quarter is long already, and on a business clock it is reckoned
# in working days and open hours, which must fit in the SLA clock's look-ahead.
TASK_DUE_MAX = timedelta(days=90)

Priority = Annotated[int, Field(strict=True, ge=0, le=PRIORITY_MAX)]
CapCount = Annotated[int, Field(strict=True, ge=1, le=CAP_COUNT_MAX)]
# Whole percents, as the README's examples and the reports show them: exact sums, no 33.3 + 66.6.
VariantPercent = Annotated[int, Field(strict=True, ge=1, le=100)]
# Some entrants must go on: a holdout of 100 would measure nothing.
HoldoutPercent = Annotated[int, Field(strict=True, ge=0, le=99)]


def _positive_up_to(longest: timedelta) -> AfterValidator:
    """A duration longer than zero and at most ``longest``."""

    def check(text: str) -> str:
        length = parse_duration(text)
        if length <= timedelta(0):
            raise ValueError(f"duration {text!r} must be positive")
        if length > longest:
            raise ValueError(f"duration {text!r} is longer than {format_duration(longest)}, the most it may be")
        return text

    return AfterValidator(check)


CapWindow = Annotated[str, _positive_up_to(CAP_WINDOW_MAX)]
TaskDue = Annotated[str, _positive_up_to(TASK_DUE_MAX)]


# An attribute holds one value, as the import and the API store it: text, a number, true or false. A list or
# a mapping written by an update step could not be exported as a column nor compared by a condition.
# Text is bounded as an imported ``attr.*`` cell is (store.importing.fields.MAX_ATTRIBUTE_VALUE).
ATTRIBUTE_VALUE_MAX = 1000
AttributeScalar = bool | int | float | str


def _one_value(value: Any) -> AttributeScalar:
    if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        if isinstance(value, str) and len(value) > ATTRIBUTE_VALUE_MAX:
            raise ValueError(f"an attribute's text is at most {ATTRIBUTE_VALUE_MAX:,} characters, "
                             f"not {len(value):,}")
        return value
    what = ("a list" if isinstance(value, list | tuple) else "a mapping" if isinstance(value, dict)
            else "null" if value is None else repr(value))
    raise ValueError(f"an attribute holds one value (text, a number, true or false), not {what}")


AttributeValue = Annotated[AttributeScalar, BeforeValidator(_one_value)]


# A number a condition compares with. The rules engine reads it as JSON written by Python: past 10**15 a
# double no longer holds every whole number (10**26 was judged smaller than 10**30), and a number written
# with an exponent (1e16, 1e-05, inf) stopped the ruleset from being made at all, failing the whole plan.
CONDITION_NUMBER_MAX = 10**15
CONDITION_NUMBER_SMALLEST = 0.0001


def condition_number_problem(value: int | float) -> str | None:
    """Why ``value`` cannot be compared with in a condition, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a number a field can hold"
    try:
        size = abs(float(value))
    except OverflowError:  # an int beyond any float
        size = math.inf
    if size > CONDITION_NUMBER_MAX:
        return f"{value!r} is larger than a condition compares with (at most 10^15 either side of 0)"
    if 0 < size < CONDITION_NUMBER_SMALLEST:
        return f"{value!r} is closer to 0 than a condition compares with (0, or at least {CONDITION_NUMBER_SMALLEST})"
    return None
