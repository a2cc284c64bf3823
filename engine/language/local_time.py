"""Wall-clock times in a customer's zone, and the quiet hours read on them.

Local times are computed naively and then placed in the zone (``place``): a wall time that does
not exist (the spring-forward gap) is read with the offset in force before the change, one that
happens twice (fall back) is the first (``fold=0``). The planner puts every touch it plans out of
quiet hours; dispatch does the same for a retry or a fallback to another channel, whose moment
comes later than the planner's, and holds a touch it claims late into them
(``engine.sending.quiet_hold``).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache

from engine.language.settings_model import DeliveryConfig
from store.clock import as_utc, zone


def clock(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))


def place(naive_local: datetime, tz: str) -> datetime:
    """A wall-clock time in ``tz`` as an aware UTC datetime (fold=0)."""
    return naive_local.replace(tzinfo=zone(tz), fold=0).astimezone(UTC)


def local_naive(moment: datetime, tz: str) -> datetime:
    return as_utc(moment).astimezone(zone(tz)).replace(tzinfo=None)


def quiet_hours_move(due: datetime, tz: str, config: DeliveryConfig, channel: str | None = None) -> datetime | None:
    """Where a touch due at ``due`` goes because of quiet hours (the channel's own when
    ``channel_quiet_hours`` gives them), or None if it may stay."""
    quiet = config.channel_quiet_hours.get(channel, config.quiet_hours) if channel else config.quiet_hours
    return _quiet_hours_move(due, tz, quiet.start, quiet.end)


# A run decides many touches at the same few moments (one due time per cadence and zone),
# so the zone arithmetic is done once per distinct (moment, zone); both are pure.
@lru_cache(maxsize=65536)
def _quiet_hours_move(due: datetime, tz: str, quiet_start: str, quiet_end: str) -> datetime | None:
    start, end = clock(quiet_start), clock(quiet_end)
    if start == end:
        return None
    local = local_naive(due, tz)
    t = local.time()
    day = local.date()
    if start > end:  # wraps midnight, e.g. 21:00–08:00
        if t >= start:
            return place(datetime.combine(day + timedelta(days=1), end), tz)
        if t < end:
            return place(datetime.combine(day, end), tz)
        return None
    if start <= t < end:
        return place(datetime.combine(day, end), tz)
    return None
