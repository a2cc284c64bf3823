"""Touches too late to make sense: dropped when claimed, not sent late.

A touch is claimed when a dispatcher gets to it, which after an outage (a deploy, a crashed machine, a
database failover, a weekend) can be hours or days after it was due, and the plan run that catches up
writes the missed window's touches with due times in the past. Without a limit all of it went out
at once when the service came back: a weekly marketing push three days late, a birthday greeting
for the day before yesterday. Each touch may go out at most ``expire_after`` after its ``due_at``
(the moment the planner chose, out of quiet hours already): its journey's own (``expire_after`` in
the journey file), else its category's (``expire_after`` in config/delivery.yaml: marketing 1d,
service 3d by default). Past it the touch is dropped with the reason ``expired: …``, in an outcome
as the caps' drops are, and it never falls back to another channel (no channel makes it less late).

Judged at the claim's moment, before the quiet hours: a touch claimed in the night is judged when it
is claimed, and one held to the morning again when it is claimed then. Webhook steps' calls to other
systems are not touches of the customer and are never dropped as late: the system still needs to know.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from channels.base import SendResult
from engine.language.durations import format_duration, parse_duration
from engine.language.settings_model import DeliveryConfig
from engine.sending.claiming import ClaimedTouch
from engine.sending.journey_rules import JourneyRules
from store.models import WEBHOOK_CHANNEL

EXPIRED = "expired"


def limit_of(touch: ClaimedTouch, config: DeliveryConfig, rules: JourneyRules) -> timedelta | None:
    """How late ``touch`` may still go out: its journey's ``expire_after``, else its category's."""
    own = rules.expire_after.get(touch.journey_id)
    if own is not None:
        return own
    text = getattr(config.expire_after, touch.category, None)
    return parse_duration(text) if isinstance(text, str) else None


def expired(touch: ClaimedTouch, now: datetime, config: DeliveryConfig | None,
            rules: JourneyRules) -> SendResult | None:
    """The drop of ``touch`` if sending it at ``now`` would be later than its limit allows, else None.
    ``config`` None: no delivery settings given (a bare dispatcher), nothing expires."""
    if config is None or touch.channel == WEBHOOK_CHANNEL:
        return None
    limit = limit_of(touch, config, rules)
    late = now - touch.due_at
    if limit is None or late <= limit:
        return None
    whose = f"journey {touch.journey_id}" if touch.journey_id in rules.expire_after else touch.category
    return SendResult(touch.key, False, error_class="permanent", error_code=EXPIRED,
                      error_reason=f"{EXPIRED}: due {touch.due_at:%Y-%m-%d %H:%M} UTC, {format_duration(late)} late; "
                                   f"{whose} touches expire after {format_duration(limit)}")
