"""The frequency caps, checked again when a batch is about to be sent (SPEC §6).

Three kinds, each a count per customer in any rolling window, checked in turn: the marketing cap
(``marketing_cap``: marketing touches on every channel), a channel's cap (``channel_caps`` in
config/delivery.yaml: marketing touches on that channel) and a journey's own (``cap`` in the
journey file: every message of that journey to the customer, its webhook calls aside). The rest
of this note is about the marketing cap and holds for each of them.

The planner decides the cap when it plans (``engine.planning.delivery_rules``): at most
``marketing_cap`` marketing touches per customer in any rolling ``marketing_cap_window`` (the
windows are [s, s + window), a touch counts at its ``due_at``; both read from
``config/delivery.yaml``). A slot can be taken between planning and sending: by a touch another
planning run placed without seeing this one, or one sent late after retries. So dispatch asks,
for every marketing touch it is about to send, whether it still fits beside the marketing
touches that have *gone out* (sent, delivered, or being sent), under the same definition.
What is merely planned is not counted here: it is checked in turn when it is sent.

The touches that went out are among those the planner counted when it admitted this one, so
with nothing changed since planning every touch it admitted is admitted here as well.

Touches being sent at the same moment are ordered by (due_at, id): one in flight elsewhere
(another lane or worker) counts only if it comes first, and within the batch each touch
admitted counts for the ones after it. Two workers racing for a customer's last slot thus
agree which touch has it. One query per batch.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import type_coerce
from sqlalchemy.types import NullType
from sqlmodel import Session, col, select

from engine.language.durations import format_duration
from engine.sending.claiming import ClaimedTouch, moments
from store.models import WEBHOOK_CHANNEL, Touch, TouchStatus

# Statuses of a marketing touch the customer has (or may have) received.
GONE_OUT = (TouchStatus.SENDING, TouchStatus.SENT, TouchStatus.DELIVERED)
RULE = "marketing_cap"  # the planner's name for this rule, so reports group both drops together
CHANNEL_RULE = "channel_cap"
JOURNEY_RULE = "journey_cap"
# A column read with no conversion of its own.
_AS_STORED = NullType()


def fits(times: Sequence[datetime], moment: datetime, cap: int, window: timedelta) -> bool:
    """Whether one more touch at ``moment`` keeps every window [s, s + window) holding it within
    ``cap``; ``times`` is sorted. The busiest such window starts at ``moment`` or at a touch less
    than a window before it (the planner's ``fits_cap``, whose package this one may not import)."""
    if cap <= 0:
        return False
    lo = bisect.bisect_right(times, moment - window)
    for start in [*times[lo : bisect.bisect_right(times, moment)], moment]:
        if bisect.bisect_left(times, start + window) - bisect.bisect_left(times, start) + 1 > cap:
            return False
    return True


def over_cap(session: Session, touches: Sequence[ClaimedTouch], batch_ids: set[int], cap: int,
             window: timedelta) -> dict[int, str]:
    """The marketing touches among ``touches`` (a claimed batch, ``batch_ids`` all of it) that
    sending now would put over the cap: touch id → the reason to record."""
    return _over(session, [t for t in touches if t.category == "marketing"], batch_ids, cap, window,
                 [col(Touch.category) == "marketing"],
                 f"{RULE}: marketing cap {cap} per {format_duration(window)} reached when sending")


def over_limits(session: Session, touches: Sequence[ClaimedTouch], batch_ids: set[int],
                channel_caps: Mapping[str, tuple[int, timedelta]],
                journey_caps: Mapping[str, tuple[int, timedelta]]) -> dict[int, str]:
    """The touches that sending now would put over a channel's cap (marketing touches on that
    channel, ``channel_caps`` of config/delivery.yaml) or their journey's own (``cap`` in the
    journey file, all its messages to the customer): touch id → the reason. One query per cap that applies."""
    dropped: dict[int, str] = {}
    for channel, (count, window) in sorted(channel_caps.items()):
        mine = [t for t in touches if t.category == "marketing" and t.channel == channel and t.id not in dropped]
        dropped.update(_over(session, mine, batch_ids, count, window,
                             [col(Touch.category) == "marketing", col(Touch.channel) == channel],
                             f"{CHANNEL_RULE}: {channel} cap {count} per {format_duration(window)} reached "
                             "when sending"))
    for journey_id, (count, window) in sorted(journey_caps.items()):
        # Messages to the customer: a journey's calls to other systems (webhook steps) are not counted.
        mine = [t for t in touches if t.journey_id == journey_id and t.id not in dropped
                and t.channel != WEBHOOK_CHANNEL]
        dropped.update(_over(session, mine, batch_ids, count, window,
                             [_unindexed(Touch.journey_id) == journey_id, col(Touch.channel) != WEBHOOK_CHANNEL],
                             f"{JOURNEY_RULE}: journey {journey_id} cap {count} per {format_duration(window)} "
                             "reached when sending"))
    return dropped


def _unindexed(column: Any) -> Any:
    """``column`` as an expression no index is searched by (``column || ''``: the same value, never NULL here).

    The caps' query is to search by the batch's customers (ix_touch_customer_due). Given the bare columns,
    SQLite searched by status (ix_touch_status_due: three statuses, one due range) or by journey
    (ix_touch_journey_planned) instead, reading every touch gone out to anyone in the window, or every touch
    the journey ever planned: a cost growing with the day's sends and the book's history, paid by every
    batch (4 ms a batch at 19,000 touches sent, 18 ms at 99,000; by customer about 1 ms whatever was sent)."""
    return col(column) + ""


def _over(session: Session, candidates: Sequence[ClaimedTouch], batch_ids: set[int], cap: int,
          window: timedelta, where: list[Any], reason: str) -> dict[int, str]:
    """Those of ``candidates`` that do not fit ``cap`` per ``window`` beside the touches matching
    ``where`` that went out (see the module doc for the order of touches sent at once)."""
    ordered = sorted(candidates, key=lambda t: (t.due_at, t.id))
    if not ordered:
        return {}
    first, last = ordered[0].due_at, ordered[-1].due_at
    # due_at as the driver gives it, read only for the touches outside the batch (see claiming.moments).
    rows = session.connection().execute(
        select(Touch.id, Touch.customer_id, Touch.status, type_coerce(Touch.due_at, _AS_STORED)).where(
            col(Touch.customer_id).in_(sorted({t.customer_id for t in ordered})),
            *where,
            _unindexed(Touch.status).in_(GONE_OUT),
            col(Touch.due_at) > first - window,
            col(Touch.due_at) < last + window,
        )
    ).all()
    moment = moments(session.get_bind().dialect)
    went: dict[int, list[tuple[datetime, int, str]]] = defaultdict(list)
    for touch_id, customer_id, status, due_at in rows:
        if touch_id not in batch_ids:
            went[customer_id].append((moment(due_at), touch_id, status))
    admitted: dict[int, list[datetime]] = defaultdict(list)
    dropped: dict[int, str] = {}
    for touch in ordered:
        order = (touch.due_at, touch.id)
        times = sorted(
            [due for due, other, status in went.get(touch.customer_id, ())
             if status != TouchStatus.SENDING or (due, other) < order]
            + admitted[touch.customer_id]
        )
        if fits(times, touch.due_at, cap, window):
            bisect.insort(admitted[touch.customer_id], touch.due_at)
        else:
            dropped[touch.id] = reason
    return dropped
