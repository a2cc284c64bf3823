"""Per-channel send rate (messages/second), held across the concurrent batches of one process.

Within a process every dispatch lane takes tokens from one ``TokenBucket`` per channel
before handing a chunk to the channel's adapter, so however many batches are in flight,
a channel never gets more than its configured rate (``config/delivery.yaml``
``rate_limits``) from this process.

Across processes (scaled out, several dispatch workers) each worker takes a share:
``JOURNEYS_DISPATCH_WORKERS=N`` divides every channel's rate by N, so N workers together
stay within the provider's limit without talking to each other on the hot path. This is
the choice for two reasons: a database-backed bucket would put one contended row update
in front of every chunk on every worker (the very thing batching avoids), and a provider
answers an overshoot with 429, which ``engine.sending.retry`` already treats as retryable, so
the share only needs to be right on average, not to the message. The cost is that an idle
worker's share is not lent to the busy ones; with workers claiming from one queue they
are busy or idle together, so little is lost.
"""

from __future__ import annotations

import asyncio
import os
import time


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. ``acquire(n)`` waits for n tokens.

    Waiters are served in arrival order (one lock), so a large chunk is not starved by small ones.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        # A tenth of a second's worth by default: smooth enough for a provider's
        # per-second limit, large enough that a chunk does not wait for every token.
        self.burst = float(burst if burst is not None else max(1.0, rate / 10))
        # Virtual scheduling (GCRA): ``_tat`` is when the bucket would next be empty at the
        # configured rate; a caller may run ahead of it by at most ``burst`` tokens.
        self._tat = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, n: float = 1) -> None:
        async with self._lock:
            now = time.monotonic()
            self._tat = max(self._tat, now) + n / self.rate
            wait = self._tat - now - self.burst / self.rate
            if wait > 0:
                # Sleeping under the lock keeps waiters in arrival order.
                await asyncio.sleep(wait)


def worker_share() -> int:
    """How many dispatch workers share the provider limits (``JOURNEYS_DISPATCH_WORKERS``, default 1)."""
    try:
        return max(1, int(os.environ.get("JOURNEYS_DISPATCH_WORKERS", "1")))
    except ValueError:
        return 1


class RateLimiter:
    """One bucket per channel; a channel without a configured rate is not limited."""

    def __init__(self, rates: dict[str, float], share: int | None = None) -> None:
        divisor = share or worker_share()
        self._buckets = {channel: TokenBucket(rate / divisor) for channel, rate in rates.items()}

    async def acquire(self, channel: str, n: int) -> None:
        bucket = self._buckets.get(channel)
        if bucket is not None:
            await bucket.acquire(n)

    def rate(self, channel: str) -> float | None:
        bucket = self._buckets.get(channel)
        return bucket.rate if bucket else None
