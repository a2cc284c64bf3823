"""The desk's background round (``console.assignment.run_desk``) on a timer, for as long as the console runs.

SLA times of new tasks, assignment, warnings before a breach and escalation after it must happen
whether or not anyone has a page open, so the console app starts this with itself (its
lifespan) and stops it with itself. Every JOURNEYS_DESK_EVERY seconds (default 60; 0 switches it
off, e.g. when a separate process runs the round). Several console workers may each run it:
every change in a round is a conditional UPDATE only one of them wins.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from console.assignment import run_desk

log = logging.getLogger(__name__)


class DeskTimer:
    """A daemon thread that runs ``run_desk`` at once and then every ``every`` seconds until stopped."""

    def __init__(self, every: float, clock: Callable[[], datetime], db_url: str | None) -> None:
        self.every = every
        self.clock = clock
        self.db_url = db_url
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="desk-timer", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to stop and wait for the round in progress to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                counts = run_desk(self.clock(), db_url=self.db_url)
                if any(counts.values()):
                    log.info("desk round: %s", counts)
            except Exception:  # a bad round (database away) must not end the timer; the next one retries
                log.exception("desk round failed")
            self.rounds += 1
            self._stop.wait(self.every)
