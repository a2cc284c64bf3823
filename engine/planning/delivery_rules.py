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
   store (planned or sent) and those planned in the same run. Service touches are exempt.
   When the cap leaves room for only some, the touches of a customer's local day are taken in
   journey priority order (higher first); the rest are dropped (``marketing_cap``, or
   ``pre_empted`` when touches of higher priority on the same day took the room). Which
   touches win depends on the touches alone, not on which run planned them: one arriving
   later (an event's, or a day planned in pieces) re-runs the contest from its day, so a
   planned touch it beats is dropped (``pre-empted by <journey>``) and a dropped one that fits
   again is planned (``decide``). A journey that stops (switched off, its file removed) with touches
   planned ahead gives up their places: the next run's contest lets back in what they kept out
   (``engine.planning.cap_again``).
4. **A channel's cap and a journey's own** (``channel_caps`` in config/delivery.yaml: marketing
   touches on that channel; ``cap`` in a journey file: the journey's messages to the customer, its
   webhook calls aside) — at most ``count`` in any rolling ``window``, in due order, counting the
   stored touches that went out or are planned. Decided before the marketing cap's contest: a touch
   that will never be sent takes no place there from another journey's. Dispatch checks both again
   when sending (``engine.sending.cap_check``), against what went out.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache, partial

from engine.language.durations import format_duration, parse_duration
from engine.language.engagement import level
from engine.language.local_time import local_naive, quiet_hours_move
from engine.language.settings_model import DeliveryConfig
from store.models import WEBHOOK_CHANNEL

DROP_NO_CHANNEL = "no_channel"
DROP_CAP = "marketing_cap"
DROP_PREEMPTED = "pre_empted"
DROP_JOURNEY_CAP = "journey_cap"
DROP_CHANNEL_CAP = "channel_cap"
MOVED_QUIET = "quiet_hours"


@dataclass(frozen=True)
class Reach:
    """What delivery needs to know about a customer."""

    timezone: str
    consent: dict[str, bool]
    reachable: dict[str, bool]
    # Consent to marketing per channel, beside ``consent`` (service): a marketing touch needs both.
    # A channel missing here follows ``consent`` (never given apart, as ``channels.routing``).
    marketing: dict[str, bool] = field(default_factory=dict)
    # (channels, category) → ``choose_channel``'s answer. One Reach is shared by every customer of
    # a chunk with the same zone, consent and contact (``engine.planning.facts``), and the steps
    # list few channel orders: the choice is worked out once per pair, not once per touch.
    chosen: dict[tuple[tuple[str, ...], str], tuple[str | None, tuple[str, ...]]] = field(
        default_factory=dict, compare=False, repr=False)

    def usable(self, channel: str, category: str = "service") -> bool:
        if channel == WEBHOOK_CHANNEL:  # a call to another system: no consent or address of the customer's
            return True
        if category == "marketing" and not self.marketing.get(channel, True):
            return False
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
    # ``channels: by_engagement`` (``channels`` empty): the customer's (activity score, churn risk)
    # when the step ran; ``decide`` takes the list for their level from the delivery setting.
    engagement: tuple[float, float | None] | None = None

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


def choose_channel(channels: list[str], reach: Reach, category: str = "service") -> tuple[str | None, list[str]]:
    key = (tuple(channels), category)
    known = reach.chosen.get(key)
    if known is None:
        usable = [c for c in channels if reach.usable(c, category)]
        known = reach.chosen[key] = (usable[0], tuple(usable[1:])) if usable else (None, ())
    return known[0], list(known[1])  # a list of its own for each touch


def channels_for(w: Wanted, config: DeliveryConfig) -> list[str]:
    """The channels ``w`` may go on: its step's list, or the delivery setting's for its engagement level."""
    if w.channels or w.engagement is None:
        return w.channels
    rules = config.engagement
    return list(config.engagement_channels[level(*w.engagement, rules.active_activity, rules.at_risk_churn)])


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


_duration = lru_cache(maxsize=64)(parse_duration)


@lru_cache(maxsize=65536)
def _local_date(moment: datetime, tz: str) -> date:
    return local_naive(moment, tz).date()


def _order_key(w: Wanted, tz: str) -> tuple[date, int, datetime, str, str, str]:
    # Same customer and local day: higher priority first; then earlier, then stable by name (two
    # touches of one journey step at one moment are the same touch).
    return (_local_date(w.planned_for, tz), -w.priority, w.planned_for, w.journey_id, w.step_id, w.occurrence)


@dataclass(frozen=True, slots=True)
class StoredTouch:
    """A touch already in the store, as the cap sees it. ``priority``: its journey's, None when
    the journey is no longer in force (the touch then keeps its status)."""

    key: str
    journey_id: str
    step_id: str
    category: str
    status: str
    error_reason: str | None
    planned_for: datetime
    due_at: datetime
    channel: str
    priority: int | None


@dataclass(slots=True)
class TouchChange:
    """A stored touch the cap decides again because a touch of its customer's day arrived:
    pre-empted (``planned`` → ``dropped``), back in (``dropped`` → ``planned``) or dropped for
    another reason."""

    key: str
    customer_id: int
    journey_id: str
    step_id: str
    old_status: str
    old_reason: str | None
    status: str
    reason: str | None  # the stored ``error_reason``: "<rule>: <why>", None when planned
    due_at: datetime
    channel: str


def stored_reason(rule: str | None, reason: str) -> str:
    """A drop as ``Touch.error_reason`` records it."""
    return f"{rule}: {reason}"[:255]


@dataclass(slots=True)
class _Contender:
    """A marketing touch in the cap's contest for its customer: new in this run, or stored."""

    order: tuple[date, int, datetime, str, str, str]
    due: datetime
    priority: int
    journey_id: str
    decision: Decision | None = None  # a new touch: its decision, completed by the contest
    stored: StoredTouch | None = None


PLANNED = "planned"
DROPPED = "dropped"
CANCELLED = "cancelled"


def decide(
    wanted: list[Wanted],
    reach: Reach,
    config: DeliveryConfig,
    stored: Sequence[StoredTouch] = (),
    customer_id: int = 0,
    again_from: datetime | None = None,
    journey_caps: Mapping[str, tuple[int, timedelta]] | None = None,
) -> tuple[list[Decision], list[TouchChange]]:
    """Decisions for one customer's wanted touches, and the stored touches the cap decides again.

    ``stored``: the customer's touches in the store that may share a cap window with these (a
    wanted touch whose key is among them is not decided again). The cap is one contest over all
    of the customer's marketing touches, taken day by day in the customer's local time and,
    within a day, by journey priority (then time, then name): a touch goes in when every rolling
    window holding it stays within the cap with those taken before it. The outcome depends on
    the touches alone, never on which run planned which, so a touch that arrives later for a
    day already planned re-runs the contest from its day: a planned touch it beats is dropped
    (``pre-empted by <journey>`` when a touch of higher priority on its day took its place), and
    a dropped one that now fits is planned again. Stored touches of earlier days, and those
    already being sent, keep their status and count as they are.

    A planned touch of a journey no longer running (switched off, its file removed: its ``priority``
    is None) takes no place in the cap: dispatch cancels it when it falls due (``engine.sending.sendable``).
    ``again_from``: the contest is run again from that moment's day with no new touch (``cap_again``).
    ``journey_caps``: journey id → its own cap (count, window), decided first with the channels' (``own_caps``).
    """
    tz = reach.timezone
    known = {s.key for s in stored}
    decisions: list[Decision] = []
    contenders: list[_Contender] = []
    ordered = wanted if len(wanted) == 1 else sorted(wanted, key=lambda w: _order_key(w, tz))
    for w in ordered:
        if known and w.key in known:
            continue
        listed_channels = channels_for(w, config)
        channel, fallbacks = choose_channel(listed_channels, reach, w.category)
        if channel is None:
            listed = ", ".join(listed_channels)
            decisions.append(
                Decision(w, DROPPED, listed_channels[0], [], w.planned_for, dropped_by=DROP_NO_CHANNEL,
                         reason=f"no consented, reachable channel among {listed}")
            )
            continue
        due = w.planned_for
        moved_by = None
        if not (w.urgent and w.category == "service"):
            moved = quiet_hours_move(due, tz, config, channel)
            if moved is not None:
                due, moved_by = moved, MOVED_QUIET
        reason = ""
        if moved_by:
            quiet = config.channel_quiet_hours.get(channel, config.quiet_hours)
            reason = (f"quiet hours {quiet.start}-{quiet.end} "
                      f"({tz}): moved from {local_naive(w.planned_for, tz):%Y-%m-%d %H:%M}")
        decisions.append(Decision(w, PLANNED, channel, fallbacks, due, moved_by=moved_by, reason=reason))
    channel_caps = {c: (cap.count, _duration(cap.window)) for c, cap in config.channel_caps.items()}
    if journey_caps or channel_caps:
        own_caps(decisions, stored, channel_caps, journey_caps or {})
    contenders.extend(_Contender(_order_key(d.wanted, tz), d.due_at, d.wanted.priority, d.wanted.journey_id, decision=d)
                      for d in decisions if d.planned and d.wanted.category == "marketing")
    if not contenders and again_from is None:
        return decisions, []
    first_day = min([c.order[0] for c in contenders] + ([_local_date(again_from, tz)] if again_from else []))
    taken: list[datetime] = []  # due times of the marketing touches that count, sorted
    for s in stored:
        if s.category != "marketing":
            continue
        day = _local_date(s.planned_for, tz)
        dropped_by = (s.error_reason or "").split(":", 1)[0]
        if day >= first_day and s.priority is not None and (
                s.status == PLANNED or (s.status == DROPPED and dropped_by in (DROP_CAP, DROP_PREEMPTED))):
            contenders.append(_Contender((day, -s.priority, s.planned_for, s.journey_id, s.step_id,
                                          s.key.split(":", 3)[-1]),
                                         s.due_at, s.priority, s.journey_id, stored=s))
        elif s.status not in (CANCELLED, DROPPED) and not (s.status == PLANNED and s.priority is None):
            taken.append(s.due_at)
    cap = config.marketing_cap
    if len(taken) + len(contenders) <= cap and all(c.stored is None for c in contenders):
        # Only new touches, and room for all of them in any window: nothing to contest.
        return decisions, []
    taken.sort()
    window = _duration(config.marketing_cap_window)
    accepted: list[_Contender] = []
    changes: list[TouchChange] = []
    for c in sorted(contenders, key=lambda c: c.order):
        rule: str | None = None
        why = ""
        if fits_cap(taken, c.due, cap, window):
            bisect.insort(taken, c.due)
            accepted.append(c)
        else:
            rule, why = DROP_CAP, f"marketing cap {cap} per {config.marketing_cap_window} reached"
            # Pre-empted: the touches of higher priority on its own day took the room it needed.
            above = [a for a in accepted if a.order[0] == c.order[0] and a.priority > c.priority]
            if above:
                rest = list(taken)
                for a in above:
                    rest.remove(a.due)
                if fits_cap(rest, c.due, cap, window):
                    winner = min(above, key=lambda a: a.order)
                    rule, why = DROP_PREEMPTED, f"pre-empted by {winner.journey_id}"
        if c.decision is not None:
            if rule is not None:
                c.decision.status, c.decision.dropped_by, c.decision.reason = DROPPED, rule, why
            continue
        old = c.stored
        assert old is not None
        status = PLANNED if rule is None else DROPPED
        reason_now = None if rule is None else stored_reason(rule, why)
        if (status, reason_now) != (old.status, old.error_reason if old.status == DROPPED else None):
            changes.append(TouchChange(old.key, customer_id, old.journey_id, old.step_id, old.status,
                                       old.error_reason, status, reason_now, old.due_at, old.channel))
    return decisions, changes



# Stored touches a cap counts: planned ones (they go out in due order) and those gone out.
_COUNTED = frozenset({PLANNED, "sending", "sent", "delivered"})
# Whether a touch (its channel, category and journey) counts towards a cap.
_Counts = Callable[[str, str, str], bool]


Caps = Mapping[str, tuple[int, timedelta]]  # a channel or journey → (count, window)


def own_caps(decisions: list[Decision], stored: Sequence[StoredTouch], channel_caps: Caps, journey_caps: Caps) -> None:
    """Drop the planned ``decisions`` that a channel's cap (marketing touches on it) or their journey's own cap
    (its messages, webhook calls aside) leaves no room for, in due order beside the customer's ``stored``
    touches; channels first, as dispatch checks them (``engine.sending.cap_check.over_limits``)."""
    for channel, (count, window) in sorted(channel_caps.items()):
        _capped(decisions, stored, count, window, partial(_on_channel, channel),
                DROP_CHANNEL_CAP, f"{channel} cap {count} per {format_duration(window)} reached")
    for journey_id, (count, window) in sorted(journey_caps.items()):
        _capped(decisions, stored, count, window, partial(_of_journey, journey_id),
                DROP_JOURNEY_CAP, f"journey {journey_id} cap {count} per {format_duration(window)} reached")


def _on_channel(channel: str, touch_channel: str, category: str, journey_id: str) -> bool:
    return category == "marketing" and touch_channel == channel


def _of_journey(journey: str, channel: str, category: str, journey_id: str) -> bool:
    return journey_id == journey and channel != WEBHOOK_CHANNEL


def _capped(decisions: list[Decision], stored: Sequence[StoredTouch], count: int, window: timedelta,
            counts: _Counts, rule: str, why: str) -> None:
    mine = sorted((d for d in decisions if d.planned and counts(d.channel, d.wanted.category, d.wanted.journey_id)),
                  key=lambda d: (d.due_at, d.wanted.journey_id, d.wanted.step_id))
    if not mine:
        return
    times = sorted(s.due_at for s in stored if s.status in _COUNTED and counts(s.channel, s.category, s.journey_id))
    for d in mine:
        if fits_cap(times, d.due_at, count, window):
            bisect.insort(times, d.due_at)
        else:
            d.status, d.dropped_by, d.reason = DROPPED, rule, why
