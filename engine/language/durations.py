"""Durations as journey files write them: ``30d``, ``6h``, ``90m``, ``2w``, ``1d12h``, ``-30d``."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache

_DURATION_RE = re.compile(r"^(-)?((?:\d+[wdhm])+)$")
_PART_RE = re.compile(r"(\d+)([wdhm])")
LONGEST = timedelta(days=36500)
_UNIT = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raises ValueError with a message fit for a journey author."""
    if not isinstance(text, str):
        raise ValueError(f"bad duration {text!r}: write a number and a unit w/d/h/m, e.g. 30d, 6h, 1d12h")
    return _parsed(text)


# A journey has a handful of durations and the planner asks for them per customer and anchor (4% of a
# planned day, profiled). Bounded, so that files full of distinct durations cannot grow it.
@lru_cache(maxsize=4096)
def _parsed(text: str) -> timedelta:
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise ValueError(f"bad duration {text!r}: write a number and a unit w/d/h/m, e.g. 30d, 6h, 1d12h")
    try:
        total = sum((int(n) * _UNIT[unit] for n, unit in _PART_RE.findall(match.group(2))), timedelta())
    except OverflowError:  # a typo like 99999999999d must be a problem at its line, not a crash
        total = LONGEST + LONGEST
    if total > LONGEST:
        # Beyond a century no journey means it, and the planner adds durations to moments that may
        # lie as late as store.clock.LAST_YEAR: 3000000d would leave what a datetime holds.
        raise ValueError(f"bad duration {text!r}: longer than 100 years (36500d)")
    return -total if match.group(1) else total


def format_duration(delta: timedelta) -> str:
    sign = "-" if delta < timedelta(0) else ""
    minutes = int(abs(delta).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins else ""]
    return sign + ("".join(parts) or "0m")
