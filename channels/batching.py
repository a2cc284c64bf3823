"""Bounded concurrent sending shared by the HTTP adapters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from channels.base import OutboundMessage, SendResult

log = logging.getLogger(__name__)


async def run_bounded(
    messages: list[OutboundMessage],
    send: Callable[[OutboundMessage], Awaitable[SendResult]],
    concurrency: int,
) -> list[SendResult]:
    """Send with a fixed pool of workers (not one task per message: a 20,000 batch
    would otherwise create 20,000 tasks), keeping results in input order."""
    results: list[SendResult | None] = [None] * len(messages)
    pending = iter(enumerate(messages))

    async def worker() -> None:
        for index, message in pending:
            try:
                results[index] = await send(message)
            except Exception as exc:  # a bug must not cost the other messages their results
                log.exception("unexpected error sending %s", message.touch_key)
                # The error may have come after the request was written: delivery unknown.
                results[index] = SendResult(
                    message.touch_key, ok=False, error_class="unknown", error_code="internal", error_reason=repr(exc)
                )

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(messages))))))
    return [r for r in results if r is not None]
