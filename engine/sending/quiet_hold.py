"""Quiet hours at the moment of sending: a touch claimed late is held, not sent.

The planner puts a touch's ``due_at`` out of its channel's quiet hours, but a touch is sent when a
dispatcher claims it, which can be much later (a backlog, an outage, the service stopped for an
hour): a touch due at 20:55 claimed at 21:30 would go out in the quiet hours. Dispatch therefore
reads the quiet hours again at the claim's moment, with the rule a retry or a fallback is held by
(``engine.sending.retry.out_of_quiet_hours``: urgent service touches and webhook calls may go out
in them). A held touch goes back to ``planned`` until their end, with the attempt its claim counted
given back (it was never tried), and the reason in the planner's words for a quiet-hours move, so
that the console and explain read it as they read the planner's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.language.local_time import local_naive
from engine.language.settings_model import DeliveryConfig
from engine.sending.claiming import ClaimedTouch
from engine.sending.retry import out_of_quiet_hours
from store.models import Customer

# Back to planned until :next, its claim's attempt given back; one executemany for a batch's holds.
HOLD = ("status = :planned, attempts = attempts - 1, next_attempt_at = :next, error_class = NULL, "
        "error_reason = :reason, claimed_by = NULL")


@dataclass(frozen=True)
class Held:
    """A claimed touch kept back to ``until``, the end of its channel's quiet hours, and why."""

    touch: ClaimedTouch
    until: datetime
    reason: str


def quiet_hold(touch: ClaimedTouch, customer: Customer | None, now: datetime,
               config: DeliveryConfig | None) -> Held | None:
    """``touch`` held if sending it at ``now`` would fall in the quiet hours of its channel in the
    customer's zone (under ``config``; None: no quiet hours), else None (it may go out now)."""
    if customer is None or config is None:
        return None
    tz = customer.timezone
    until = out_of_quiet_hours(now, touch.urgent, tz, touch.channel, config)
    if until is None or until <= now:
        return None
    quiet = config.channel_quiet_hours.get(touch.channel, config.quiet_hours)
    # The planner's words, its rule's code first (store.touch_reasons reads it as a quiet-hours move from
    # the claim's moment, the console words it as the planner's).
    moved_from = local_naive(now, tz)
    reason = f"quiet_hours: quiet hours {quiet.start}-{quiet.end} ({tz}): moved from {moved_from:%Y-%m-%d %H:%M}"
    return Held(touch, until, reason[:255])


def hold_rows(held: Sequence[Held]) -> list[dict[str, Any]]:
    """The ``HOLD`` parameters of each held touch."""
    return [{"id": h.touch.id, "next": h.until, "reason": h.reason} for h in held]
