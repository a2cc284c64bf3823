"""Console settings, read from the environment once per app.

Secrets (session key, API keys) come only from the environment: nothing secret
is ever stored in the repository.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass

log = logging.getLogger(__name__)

ASSIGNMENT_STRATEGIES: tuple[str, ...] = ("least_loaded", "round_robin", "none")


def hash_api_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _api_key_hashes(raw: str) -> tuple[bytes, ...]:
    hashes: list[bytes] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        # ``sha256:<hex>`` lets an operator configure a key without putting the key itself in the env.
        if item.startswith("sha256:"):
            try:
                hashes.append(bytes.fromhex(item[len("sha256:"):]))
            except ValueError:
                log.warning("ignoring a malformed sha256: entry in JOURNEYS_API_KEYS")
            continue
        hashes.append(hash_api_key(item))
    return tuple(hashes)


@dataclass(frozen=True)
class ConsoleSettings:
    database_url: str | None = None
    secret_key: str = ""
    secret_generated: bool = False
    api_key_hashes: tuple[bytes, ...] = ()
    assignment: str = "least_loaded"
    max_open_per_agent: int = 25
    # Secure cookie even when a request arrives as plain http (e.g. TLS ends at a proxy that
    # does not pass X-Forwarded-Proto); requests that arrive as https always get a Secure cookie.
    cookie_secure: bool = False
    # A console left open on an agent's desk ends after this much inactivity ...
    session_idle_timeout: int = 30 * 60
    # ... and any session after this long, active or not, so a stolen cookie does not live for ever.
    session_lifetime: int = 12 * 3600
    # Failed logins per account before it is locked, and for how long (per account, in the database).
    login_max_failures: int = 5
    login_lockout: int = 15 * 60
    # Failed logins per client address within ``login_ip_window`` before that address is refused
    # for ``login_lockout`` (in this process). Higher than the per-account limit: a call centre's
    # agents often share one public address, and one person's typos must not lock out the floor.
    login_ip_max_failures: int = 20
    login_ip_window: int = 15 * 60
    page_size: int = 25

    @classmethod
    def from_env(cls, database_url: str | None = None) -> ConsoleSettings:
        secret = os.environ.get("JOURNEYS_SECRET_KEY", "").strip()
        generated = False
        if not secret:
            secret = secrets.token_urlsafe(48)
            generated = True
            # Sessions then end when the process stops, which is acceptable for a laptop run
            # but not for several workers: they would not accept each other's cookies.
            log.warning("JOURNEYS_SECRET_KEY is not set: generated a random session key for this process; "
                        "sessions will not survive a restart")
        return cls(
            database_url=database_url,
            secret_key=secret,
            secret_generated=generated,
            api_key_hashes=_api_key_hashes(os.environ.get("JOURNEYS_API_KEYS", "")),
            assignment=assignment_strategy(),
            max_open_per_agent=_int_env("JOURNEYS_ASSIGNMENT_MAX_PER_AGENT", 25),
            cookie_secure=os.environ.get("JOURNEYS_COOKIE_SECURE", "").lower() in ("1", "true", "yes"),
            session_idle_timeout=60 * _positive_env("JOURNEYS_SESSION_IDLE_MINUTES", 30),
            session_lifetime=3600 * _positive_env("JOURNEYS_SESSION_MAX_HOURS", 12),
            login_max_failures=_positive_env("JOURNEYS_LOGIN_MAX_FAILURES", 5),
            login_lockout=60 * _positive_env("JOURNEYS_LOGIN_LOCKOUT_MINUTES", 15),
            login_ip_max_failures=_positive_env("JOURNEYS_LOGIN_IP_MAX_FAILURES", 20),
        )


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        log.warning("%s is not a whole number; using %d", name, default)
        return default


def _positive_env(name: str, default: int) -> int:
    # Zero or negative would switch a protection off (or lock everyone out); refuse it loudly.
    value = _int_env(name, default)
    if value <= 0:
        log.warning("%s must be a positive whole number; using %d", name, default)
        return default
    return value


def assignment_strategy() -> str:
    value = os.environ.get("JOURNEYS_ASSIGNMENT", "least_loaded").strip().lower()
    if value not in ASSIGNMENT_STRATEGIES:
        log.warning("JOURNEYS_ASSIGNMENT=%r is not one of %s; using least_loaded", value, ASSIGNMENT_STRATEGIES)
        return "least_loaded"
    return value


def max_open_per_agent() -> int:
    return _int_env("JOURNEYS_ASSIGNMENT_MAX_PER_AGENT", 25)
