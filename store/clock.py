"""Time helpers. The store keeps aware UTC datetimes (sqlmodel's UTCDateTime on
both SQLite and PostgreSQL); people see the customer's local time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_Day = TypeVar("_Day", bound=date)

_simulated: Callable[[], datetime] | None = None


def utcnow() -> datetime:
    """Now as aware UTC; while ``simulated_time`` is in effect, the simulation's time."""
    if _simulated is not None:
        return _simulated()
    return datetime.now(UTC)


@contextmanager
def simulated_time(clock: Callable[[], datetime]) -> Iterator[None]:
    """Make ``utcnow`` answer ``clock()`` (``journeys demo``): parts that stamp rows with "now"
    themselves (created_at, received_at) then follow the simulated day, not the machine's."""
    global _simulated
    previous, _simulated = _simulated, clock
    try:
        yield
    finally:
        _simulated = previous


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def known_zone(name: str) -> bool:
    """Whether ``name`` is a zone of the IANA database (``Asia/Shanghai``); "" or a path is not."""
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, "Asia"
        return False
    return True


def as_utc(moment: datetime) -> datetime:
    """Any datetime as aware UTC; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_local(moment: datetime, tz_name: str) -> datetime:
    """``moment`` as an aware datetime in the zone ``tz_name``."""
    return as_utc(moment).astimezone(zone(tz_name))


# The years the product takes a date or a moment in, from any input (CSV, API, console, CLI, journey
# files). Wide enough for any birth date, policy or plan; narrow enough that the planner's arithmetic
# (look-backs, anniversaries, waits of up to a century, local days) stays far inside what datetime
# holds: an event stamped in year 1 once stopped every later plan with an OverflowError.
FIRST_YEAR = 1900
LAST_YEAR = 2199


def out_of_range(value: date) -> str | None:
    """Why ``value`` (a date or a datetime, read in its own zone) is refused, as a predicate to follow
    the value in a message ("'0001-01-01' is outside …"), or None when it is taken."""
    if FIRST_YEAR <= value.year <= LAST_YEAR:
        return None
    return f"is outside the years {FIRST_YEAR}–{LAST_YEAR}"


def in_range(value: _Day, shown: str, error: type[ValueError] = ValueError) -> _Day:
    """``value`` when ``out_of_range`` takes it; else ``error`` saying so after ``shown`` (how the
    value was written, e.g. ``"'0001-01-01'"``), a subclass for callers with their own errors."""
    problem = out_of_range(value)
    if problem:
        raise error(f"{shown} {problem}")
    return value
