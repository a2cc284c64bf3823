"""What happens to a touch after a failed send (SPEC §6, §7).

- Retryable (timeouts, 5xx, 429, WeChat -1/45009): back off exponentially with full
  jitter and try the same channel again at ``next_attempt_at``, up to ``max_attempts``.
  Jitter spreads a burst of failures (a provider outage) so that the retries do not
  all come back in the same second and trip the provider's rate limit again.
- Permanent (invalid number, not subscribed, bad template) or retries exhausted: the
  next channel of ``fallback_channels``, due now with a fresh attempt count; with no
  channel left the touch fails with the provider's reason.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

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
