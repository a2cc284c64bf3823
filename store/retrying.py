"""Retry a unit of database work when SQLite says "database is locked".

``store.db`` gives every SQLite connection ``busy_timeout=30000``, so a writer normally
waits for the lock instead of failing. The error can still come back: when the wait runs
out under a long write burst, and at once (without waiting) when a deferred transaction
that has read tries to write after another connection committed. Then the whole unit of
work must be run again from the start: its transaction was rolled back, so nothing of it
was written and re-running it cannot write anything twice.

Wrap units that are safe to re-run as a whole (one ``engine.begin()`` block, a claim):

    claimed = retry_on_locked(lambda: claim_due(engine, worker, 500, now))
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")

_LOCKED_MESSAGES = ("database is locked", "database table is locked", "database schema is locked")


def is_locked(exc: BaseException) -> bool:
    """Is ``exc`` SQLite's lock contention (busy/locked), as opposed to a real error?"""
    return isinstance(exc, OperationalError) and any(m in str(exc.orig).lower() for m in _LOCKED_MESSAGES)


def retry_on_locked(
    work: Callable[[], T],
    *,
    attempts: int = 10,
    base_delay: float = 0.02,
    max_delay: float = 1.0,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Run ``work``; on "database is locked" run it again after a jittered, growing pause.

    Any other error, and the lock error after ``attempts`` tries, is raised as it is.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except OperationalError as exc:
            if not is_locked(exc) or attempt == attempts:
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            # Jitter: writers that collided must not all come back at the same instant.
            pause = min(max_delay, base_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)  # nosec B311 # retry jitter
            log.debug("database is locked (attempt %d of %d); retrying in %.3f s", attempt, attempts, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")  # the loop returns or raises
