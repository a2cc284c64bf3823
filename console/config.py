"""Console settings, read from the environment once per app.

Secrets (session key, API keys) come only from the environment: nothing secret
is ever stored in the repository.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

ASSIGNMENT_STRATEGIES: tuple[str, ...] = ("least_loaded", "round_robin", "none")


def hash_api_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


# What a key may do (console/api.py enforces it; its docstring and the README's API section
# describe the format). ``system`` and ``desk`` are systems; ``agent`` and ``supervisor`` are
# a person's own key, named after their console user.
SYSTEM_KEY_ROLES: frozenset[str] = frozenset({"system", "desk"})
PERSONAL_KEY_ROLES: frozenset[str] = frozenset({"agent", "supervisor"})
ALL_TEAMS = "*"
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class ApiKey:
    """One entry of ``JOURNEYS_API_KEYS``: who holds the key, what it may do, and its SHA-256 digest."""

    name: str
    role: str
    digest: bytes = field(repr=False)
    # Desk keys only: the teams whose agents the key may act for (``*``: every team).
    teams: frozenset[str] = frozenset()
    # Written in the old form (a bare key or ``sha256:<hex>``): a system key named ``legacy-N``.
    legacy: bool = False

    @property
    def personal(self) -> bool:
        return self.role in PERSONAL_KEY_ROLES

    @property
    def fingerprint(self) -> str:
        """The digest's first 8 hex digits: names the key in logs without giving it away."""
        return self.digest.hex()[:8]

    def may_act_for(self, username: str, role: str, team: str | None) -> bool:
        """Whether ``X-Acting-User: username`` is allowed (the user exists and is active; the caller checks)."""
        if self.personal:
            return username == self.name and role == self.role
        if self.role != "desk" or role != "agent":
            return False
        return ALL_TEAMS in self.teams or (team is not None and team in self.teams)


class _BadEntry(ValueError):
    """Why one entry of JOURNEYS_API_KEYS is ignored (never contains the key)."""


def _digest_of(secret: str) -> bytes:
    # ``sha256:<hex>`` lets an operator configure a key without putting the key itself in the env.
    if secret.startswith("sha256:"):
        hex_digest = secret[len("sha256:"):]
        if not _HEX_DIGEST.match(hex_digest):
            raise _BadEntry("sha256: must be followed by 64 hex digits")
        return bytes.fromhex(hex_digest)
    if not secret:
        raise _BadEntry("the key is empty")
    return hash_api_key(secret)


def _role_and_teams(text: str) -> tuple[str, frozenset[str]]:
    role, has_teams, team_list = text.partition("=")
    teams = frozenset(t.strip() for t in team_list.split("+") if t.strip())
    if role == "desk":
        if not teams:
            raise _BadEntry("a desk key names the teams it acts for: desk=TEAM[+TEAM...] or desk=*")
        return role, teams
    if role in SYSTEM_KEY_ROLES | PERSONAL_KEY_ROLES and not has_teams:
        return role, frozenset()
    raise _BadEntry(f"role must be one of system, desk=TEAM[+TEAM...], {', '.join(sorted(PERSONAL_KEY_ROLES))}")


def _parse_entry(item: str, legacy_number: int) -> ApiKey:
    # The old forms: a bare key (no colon) or ``sha256:<hex>``. Both stay valid as system keys
    # that may not act for anyone, which is what a key that names no owner can safely be.
    if ":" not in item or item.startswith("sha256:"):
        return ApiKey(f"legacy-{legacy_number}", "system", _digest_of(item), legacy=True)
    parts = item.split(":", 2)
    if len(parts) < 3:
        raise _BadEntry("expected NAME:ROLE:KEY or NAME:ROLE:sha256:HEX")
    name, role_text, secret = (part.strip() for part in parts)
    if not name or any(ch.isspace() for ch in name):
        raise _BadEntry("the name is empty or contains spaces")
    role, teams = _role_and_teams(role_text)
    return ApiKey(name, role, _digest_of(secret), teams)


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """The keys of ``JOURNEYS_API_KEYS``; a malformed entry is logged (by position, never its text) and skipped."""
    keys: list[ApiKey] = []
    for position, item in enumerate((part.strip() for part in raw.split(",")), start=1):
        if not item:
            continue
        try:
            key = _parse_entry(item, sum(k.legacy for k in keys) + 1)
        except _BadEntry as exc:
            log.warning("JOURNEYS_API_KEYS entry %d ignored: %s", position, exc)
            continue
        if any(k.name == key.name for k in keys):
            # Names are the keys' identities (audit log, acting rights): two keys with one name would blur them.
            log.warning("JOURNEYS_API_KEYS entry %d ignored: the name %r is already used", position, key.name)
            continue
        keys.append(key)
    legacy = [k for k in keys if k.legacy]
    if legacy:
        log.warning(
            "JOURNEYS_API_KEYS: %d key(s) in the old form (a bare key or sha256:<hex>) are system keys without "
            "acting rights (X-Acting-User is refused with 403): %s; write each as NAME:ROLE:KEY "
            "(see the README's API section)",
            len(legacy), ", ".join(f"{k.name} (sha256 {k.fingerprint}...)" for k in legacy),
        )
    return tuple(keys)


@dataclass(frozen=True)
class ConsoleSettings:
    database_url: str | None = None
    secret_key: str = ""
    secret_generated: bool = False
    api_keys: tuple[ApiKey, ...] = ()
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
    # for ``login_lockout`` (counted in the database, over every process). Higher than the per-account
    # limit: a call centre's agents often share one public address, and one person's typos must not
    # lock out the floor.
    login_ip_max_failures: int = 20
    login_ip_window: int = 15 * 60
    page_size: int = 25
    # Unmasked customer details each user may open per rolling hour, counted from the audit log
    # (so every worker shares the count). An agent on calls needs a few an hour; a script scraping
    # the queue needs thousands.
    reveal_limit_per_hour: int = 30
    # This many reveal attempts by one user within ``reveal_burst_window`` seconds is flagged to
    # supervisors and on the admin's audit page, well before the hourly limit stops anyone.
    reveal_burst_count: int = 10
    reveal_burst_window: int = 10 * 60
    # Seconds between rounds of the desk's background work (SLA times, assignment, warnings,
    # escalation: console.desk_schedule); 0: this console runs none.
    desk_every: float = 60.0

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
            api_keys=parse_api_keys(os.environ.get("JOURNEYS_API_KEYS", "")),
            assignment=assignment_strategy(),
            max_open_per_agent=_int_env("JOURNEYS_ASSIGNMENT_MAX_PER_AGENT", 25),
            cookie_secure=os.environ.get("JOURNEYS_COOKIE_SECURE", "").lower() in ("1", "true", "yes"),
            session_idle_timeout=60 * _positive_env("JOURNEYS_SESSION_IDLE_MINUTES", 30),
            session_lifetime=3600 * _positive_env("JOURNEYS_SESSION_MAX_HOURS", 12),
            login_max_failures=_positive_env("JOURNEYS_LOGIN_MAX_FAILURES", 5),
            login_lockout=60 * _positive_env("JOURNEYS_LOGIN_LOCKOUT_MINUTES", 15),
            login_ip_max_failures=_positive_env("JOURNEYS_LOGIN_IP_MAX_FAILURES", 20),
            reveal_limit_per_hour=_positive_env("JOURNEYS_REVEAL_LIMIT_PER_HOUR", 30),
            reveal_burst_count=_positive_env("JOURNEYS_REVEAL_BURST_COUNT", 10),
            reveal_burst_window=60 * _positive_env("JOURNEYS_REVEAL_BURST_MINUTES", 10),
            desk_every=max(0, _int_env("JOURNEYS_DESK_EVERY", 60)),
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
