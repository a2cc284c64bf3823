"""Delivery rules that hold across every journey (SPEC §6), all read from ``DeliveryConfig``.

Applied to every customer-facing touch a journey wants, in this order:
1. **Channel** — the first channel of the step's list the customer consented to and can be
   reached on (phone for SMS, an OpenID for WeChat, an address for e-mail); the rest of the
   consented+reachable channels become ``fallback_channels`` for dispatch's permanent-failure
   fallback. None → the touch is dropped (``no_channel``), whatever its category.
2. **Quiet hours** in the customer's local time (default 21:00–08:00): a touch due inside is
   moved to the end of quiet hours (the next allowed minute), never dropped; urgent service
   touches are exempt. 20:59 stays, 21:00 moves to 08:00 the next day, 08:00 stays.
3. **Marketing cap** — at most ``marketing_cap`` marketing touches per customer in any
   rolling ``marketing_cap_window`` (default 2 per 7 days), counting touches already in the
   store (planned or sent) and those planned earlier in the same run. Service touches are
   exempt. When the cap leaves room for only some, the day's touches are taken in journey
   priority order (higher first); the rest are dropped (``marketing_cap``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

from engine.language.durations import parse_duration
from engine.language.settings_model import DeliveryConfig
from engine.planning.occurrences import clock, local_naive, place

DROP_NO_CHANNEL = "no_channel"
DROP_CAP = "marketing_cap"
MOVED_QUIET = "quiet_hours"


@dataclass(frozen=True)
class Reach:
    """What delivery needs to know about a customer."""

    timezone: str
    consent: dict[str, bool]
    reachable: dict[str, bool]

    def usable(self, channel: str) -> bool:
        return self.consent.get(channel, False) and self.reachable.get(channel, False)


@dataclass
class Wanted:
    """A touch a journey wants to send, before delivery rules."""

    customer_id: int
    journey_id: str
    journey_version: str
    step_id: str
    occurrence: str
    category: str
    urgent: bool
    priority: int
    channels: list[str]
    template: str
    planned_for: datetime
    split_branch: str | None = None
    entry_rule: str | None = None

    @property
    def key(self) -> str:
        return f"{self.customer_id}:{self.journey_id}:{self.step_id}:{self.occurrence}"


@dataclass
class Decision:
    wanted: Wanted
    status: str  # planned | dropped
    channel: str
    fallback_channels: list[str]
    due_at: datetime
    moved_by: str | None = None  # MOVED_QUIET when quiet hours held it
    dropped_by: str | None = None  # DROP_NO_CHANNEL | DROP_CAP
    reason: str = ""

    @property
    def planned(self) -> bool:
        return self.status == "planned"


def choose_channel(channels: list[str], reach: Reach) -> tuple[str | None, list[str]]:
    usable = [c for c in channels if reach.usable(c)]
    if not usable:
        return None, []
    return usable[0], usable[1:]


def quiet_hours_move(due: datetime, tz: str, config: DeliveryConfig) -> datetime | None:
    """Where a touch due at ``due`` goes because of quiet hours, or None if it may stay."""
    return _quiet_hours_move(due, tz, config.quiet_hours.start, config.quiet_hours.end)


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


def fits_cap(times: list[datetime], moment: datetime, cap: int, window: timedelta) -> bool:
    """Whether one more marketing touch at ``moment`` keeps every rolling window within ``cap``.

    ``times`` is sorted. A window is [s, s + window) for any s; the busiest window holding
    ``moment`` starts at ``moment`` itself or at an earlier touch less than a window before.
    """
    if cap <= 0:
        return False
    lo = bisect.bisect_right(times, moment - window)
    starts = [*times[lo : bisect.bisect_right(times, moment)], moment]
    for s in starts:
        count = bisect.bisect_left(times, s + window) - bisect.bisect_left(times, s) + 1
        if count > cap:
            return False
    return True


@dataclass
class CapLedger:
    """Marketing touch times per customer: what the store holds plus what this run planned."""

    cap: int
    window: timedelta
    times: dict[int, list[datetime]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: DeliveryConfig) -> CapLedger:
        return cls(config.marketing_cap, parse_duration(config.marketing_cap_window))

    def load(self, rows: Iterable[tuple[int, datetime]]) -> None:
        for customer_id, due in rows:
            self.times.setdefault(customer_id, []).append(due)
        for times in self.times.values():
            times.sort()

    def fits(self, customer_id: int, moment: datetime) -> bool:
        return fits_cap(self.times.get(customer_id, []), moment, self.cap, self.window)

    def add(self, customer_id: int, moment: datetime) -> None:
        bisect.insort(self.times.setdefault(customer_id, []), moment)


@lru_cache(maxsize=65536)
def _local_date(moment: datetime, tz: str) -> date:
    return local_naive(moment, tz).date()


def _order_key(w: Wanted, tz: str) -> tuple[date, int, datetime, str, str]:
    # Same customer and local day: higher priority first; then earlier, then stable by name.
    return (_local_date(w.planned_for, tz), -w.priority, w.planned_for, w.journey_id, w.step_id)


def apply(
    wanted: list[Wanted],
    reach: Reach,
    config: DeliveryConfig,
    ledger: CapLedger,
    existing: dict[str, datetime] | None = None,
) -> list[Decision]:
    """Decisions for one customer's wanted touches. ``existing``: keys already in the store
    (their due time) — those are not decided again and already count in ``ledger``."""
    out: list[Decision] = []
    ordered = wanted if len(wanted) == 1 else sorted(wanted, key=lambda w: _order_key(w, reach.timezone))
    for w in ordered:
        if existing and w.key in existing:
            continue
        channel, fallbacks = choose_channel(w.channels, reach)
        if channel is None:
            listed = ", ".join(w.channels)
            out.append(
                Decision(w, "dropped", w.channels[0], [], w.planned_for, dropped_by=DROP_NO_CHANNEL,
                         reason=f"no consented, reachable channel among {listed}")
            )
            continue
        due = w.planned_for
        moved_by = None
        customer_facing_exempt = w.urgent and w.category == "service"
        if not customer_facing_exempt:
            moved = quiet_hours_move(due, reach.timezone, config)
            if moved is not None:
                due, moved_by = moved, MOVED_QUIET
        if w.category == "marketing":
            if not ledger.fits(w.customer_id, due):
                out.append(
                    Decision(w, "dropped", channel, fallbacks, due, moved_by=moved_by, dropped_by=DROP_CAP,
                             reason=f"marketing cap {ledger.cap} per {config.marketing_cap_window} reached")
                )
                continue
            ledger.add(w.customer_id, due)
        reason = ""
        if moved_by:
            reason = (f"quiet hours {config.quiet_hours.start}-{config.quiet_hours.end} "
                      f"({reach.timezone}): moved from {local_naive(w.planned_for, reach.timezone):%Y-%m-%d %H:%M}")
        out.append(Decision(w, "planned", channel, fallbacks, due, moved_by=moved_by, reason=reason))
    return out
