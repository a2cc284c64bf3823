"""What happens to a touch after a failed send (SPEC §6, §7).

- Retryable (timeouts, 5xx, 429, WeChat -1/45009): back off exponentially with full
  jitter and try the same channel again at ``next_attempt_at``, up to ``max_attempts``.
  Jitter spreads a burst of failures (a provider outage) so that the retries do not
  all come back in the same second and trip the provider's rate limit again.
- Permanent (invalid number, not subscribed, bad template) or retries exhausted: the
  next channel of ``fallback_channels``, due now with a fresh attempt count; with no
  channel left the touch fails with the provider's reason.
- Either comes later than the moment the planner put out of quiet hours, on a channel that
  may have its own: it is held to their end as the planner holds a touch (``out_of_quiet_hours``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.language.local_time import quiet_hours_move
from engine.language.settings_model import DeliveryConfig

BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=1)


def backoff_delay(
    attempts: int,
    base: timedelta = BASE_DELAY,
    cap: timedelta = MAX_DELAY,
    rng: random.Random | None = None,
) -> timedelta:
    """Delay before attempt ``attempts + 1``: between half and all of ``base * 2**(attempts-1)``, capped.

    "Equal jitter" rather than full jitter: a retry never comes back almost at once.
    """
    ceiling = min(cap.total_seconds(), base.total_seconds() * (2 ** max(0, attempts - 1)))
    r = (rng or random).random()
    return timedelta(seconds=ceiling * (0.5 + 0.5 * r))


@dataclass(frozen=True)
class Decision:
    """What to write for a failed touch."""

    action: str  # retry | fallback | fail
    next_attempt_at: datetime | None = None
    channel: str | None = None  # fallback: the new channel
    fallback_channels: tuple[str, ...] = ()  # fallback: what remains after it


def decide(
    error_class: str | None,
    attempts: int,
    fallback_channels: list[str],
    max_attempts: int,
    now: datetime,
    rng: random.Random | None = None,
) -> Decision:
    """``attempts`` counts the attempt that just failed on the current channel."""
    if error_class == "retryable" and attempts < max_attempts:
        return Decision("retry", next_attempt_at=now + backoff_delay(attempts, rng=rng))
    if fallback_channels:
        rest = tuple(fallback_channels[1:])
        return Decision("fallback", next_attempt_at=now, channel=fallback_channels[0], fallback_channels=rest)
    return Decision("fail")


def out_of_quiet_hours(at: datetime | None, urgent: bool, tz: str | None, channel: str | None,
                       config: DeliveryConfig | None) -> datetime | None:
    """``at``, or the end of the quiet hours of ``channel`` it falls in, in the customer's zone ``tz``
    (None: no customer left, nothing to hold), under ``config`` (None: none held). An urgent touch
    (urgent service sends, webhook calls) may go out in quiet hours, as the planner lets it."""
    if at is None or urgent or tz is None or config is None:
        return at
    return quiet_hours_move(at, tz, config, channel) or at
