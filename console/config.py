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
    cookie_secure: bool = False
    session_max_age: int = 8 * 3600
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
        )


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        log.warning("%s is not a whole number; using %d", name, default)
        return default


def assignment_strategy() -> str:
    value = os.environ.get("JOURNEYS_ASSIGNMENT", "least_loaded").strip().lower()
    if value not in ASSIGNMENT_STRATEGIES:
        log.warning("JOURNEYS_ASSIGNMENT=%r is not one of %s; using least_loaded", value, ASSIGNMENT_STRATEGIES)
        return "least_loaded"
    return value


def max_open_per_agent() -> int:
    return _int_env("JOURNEYS_ASSIGNMENT_MAX_PER_AGENT", 25)
