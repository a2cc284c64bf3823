"""Failed-login counting in this process: a sliding window per key (client address, unknown user name).

Known accounts are locked in the database (``AppUser.failed_logins``/``locked_until``), which
every worker shares. This window adds what the database cannot hold cheaply: one address trying
many names, and names that do not exist (so that they lock like real ones and the lockout
message does not tell an attacker which names are real). Being per process, several workers
each allow the limit; the per-account lock still holds across all of them.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta

from console.config import ConsoleSettings

UNKNOWN_NAME_WINDOW = timedelta(days=1)
# Bounded so that a flood of distinct addresses or names cannot grow the process without limit.
MAX_KEYS = 10_000


class FailureWindow:
    """``limit`` failures of one key within ``window`` block that key for ``lockout``."""

    def __init__(self, limit: int, window: timedelta, lockout: timedelta) -> None:
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self._failures: dict[str, deque[datetime]] = {}
        self._blocked: dict[str, datetime] = {}
        # Login runs in FastAPI's thread pool: several requests may count at once.
        self._lock = threading.Lock()

    def blocked_until(self, key: str, now: datetime) -> datetime | None:
        with self._lock:
            until = self._blocked.get(key)
            if until is None:
                return None
            if until <= now:
                del self._blocked[key]
                return None
            return until

    def fail(self, key: str, now: datetime) -> datetime | None:
        """Count a failure; returns the end of the block if this failure starts one, else None."""
        with self._lock:
            times = self._failures.get(key)
            if times is None:
                self._make_room(now)
                times = self._failures[key] = deque()
            times.append(now)
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) < self.limit:
                return None
            del self._failures[key]
            until = now + self.lockout
            self._blocked[key] = until
            return until

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
            self._blocked.pop(key, None)

    def _make_room(self, now: datetime) -> None:
        if len(self._failures) < MAX_KEYS:
            return
        for key in [k for k, t in self._failures.items() if not t or t[-1] <= now - self.window]:
            del self._failures[key]
        while len(self._failures) >= MAX_KEYS:
            # Still full of live keys: forget the oldest-created ones (dicts keep insertion order).
            del self._failures[next(iter(self._failures))]
        for key in [k for k, until in self._blocked.items() if until <= now]:
            del self._blocked[key]


class LoginLimits:
    """The windows the login form consults: per client address and per unknown user name."""

    def __init__(self, settings: ConsoleSettings) -> None:
        lockout = timedelta(seconds=settings.login_lockout)
        self.by_address = FailureWindow(settings.login_ip_max_failures, timedelta(seconds=settings.login_ip_window),
                                        lockout)
        # A real account's counter has no window (it runs until a successful login), so an unknown
        # name gets a long one: probing slowly must not reveal which names exist.
        self.unknown_names = FailureWindow(settings.login_max_failures, UNKNOWN_NAME_WINDOW, lockout)
