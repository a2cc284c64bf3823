"""Failed-login counting in the database: a sliding window per key (client address, unknown user name).

Known accounts are locked on their own row (``AppUser.failed_logins``/``locked_until``). These
windows add one address trying many names, and names that do not exist (so that they lock like
real ones and the lockout message does not tell an attacker which names are real). They live in
the ``kv`` table, which every console process shares: with several uvicorn workers, or after a
restart, an address or a name still gets its limit once, not once per process.

Each key has two rows, ``login_failures:<kind>:<digest>`` (the times of its recent failures, at
most ``limit`` of them) and ``login_block:<kind>:<digest>`` (until when it is refused). The
digest keeps a typed name (often a password typed into the wrong field) out of the table and
every key within the column's length. Rows past their window are deleted in one statement when a
new key is counted, and failure rows beyond ``MAX_KEYS`` per kind are dropped oldest first, so a
flood of distinct addresses or names cannot grow the table without limit; a block is kept until
it ends, since each took ``limit`` failures to earn.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from console.config import ConsoleSettings
from engine.loop.sqlfn import insert_ignoring_duplicates
from store.db import session_scope
from store.models import KeyValue

UNKNOWN_NAME_WINDOW = timedelta(days=1)
# Failure rows kept per kind at most (the oldest go first past it).
MAX_KEYS = 10_000
FAILURES = "login_failures"
BLOCK = "login_block"
_KV: sa.Table = KeyValue.__table__  # type: ignore[attr-defined]


def _prefix(row: str, kind: str) -> str:
    return f"{row}:{kind}:"


def _under(prefix: str) -> sa.ColumnElement[bool]:
    # A range on the primary key rather than LIKE, which SQLite does not serve from the index.
    return sa.and_(_KV.c.key >= prefix, _KV.c.key < prefix + "\uffff")


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class FailureWindow:
    """``limit`` failures of one key within ``window`` block that key for ``lockout``, in every process."""

    def __init__(self, kind: str, limit: int, window: timedelta, lockout: timedelta, db_url: str | None) -> None:
        self.kind = kind
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self.db_url = db_url

    def _row_key(self, row: str, key: str) -> str:
        return _prefix(row, self.kind) + hashlib.sha256(key.encode("utf-8")).hexdigest()

    def blocked_until(self, key: str, now: datetime) -> datetime | None:
        with session_scope(self.db_url) as session:
            value = session.connection().execute(
                sa.select(_KV.c.value).where(_KV.c.key == self._row_key(BLOCK, key))).scalar_one_or_none()
        until = _moment(value["until"]) if value else None
        return until if until is not None and until > now else None

    def fail(self, key: str, now: datetime) -> datetime | None:
        """Count a failure; returns the end of the block if this failure starts one, else None."""
        failures_key = self._row_key(FAILURES, key)
        with session_scope(self.db_url) as session:
            conn = session.connection()
            new = insert_ignoring_duplicates(conn, _KV, [{"key": failures_key, "value": {"times": []},
                                                          "updated_at": now}])
            # Written before it is read, so that two processes counting the same key at once take turns
            # (a row lock on PostgreSQL, the write lock on SQLite) and neither loses the other's failure.
            conn.execute(sa.update(_KV).where(_KV.c.key == failures_key).values(updated_at=now))
            value = conn.execute(sa.select(_KV.c.value).where(_KV.c.key == failures_key)).scalar_one()
            start = (now - self.window).timestamp()
            times = [t for t in value.get("times", []) if t > start] + [now.timestamp()]
            if len(times) < self.limit:
                conn.execute(sa.update(_KV).where(_KV.c.key == failures_key).values(value={"times": times}))
                if new:
                    self._make_room(conn, now)
                return None
            until = now + self.lockout
            conn.execute(sa.delete(_KV).where(_KV.c.key == failures_key))
            block_key = self._row_key(BLOCK, key)
            conn.execute(sa.delete(_KV).where(_KV.c.key == block_key))
            conn.execute(sa.insert(_KV).values(key=block_key, value={"until": until.timestamp()}, updated_at=now))
            return until

    def _make_room(self, conn: Connection, now: datetime) -> None:
        failures = _under(_prefix(FAILURES, self.kind))
        conn.execute(sa.delete(_KV).where(failures, _KV.c.updated_at <= now - self.window))
        conn.execute(sa.delete(_KV).where(_under(_prefix(BLOCK, self.kind)), _KV.c.updated_at <= now - self.lockout))
        excess = conn.execute(sa.select(sa.func.count()).select_from(_KV).where(failures)).scalar_one() - MAX_KEYS
        if excess > 0:
            oldest = sa.select(_KV.c.key).where(failures).order_by(_KV.c.updated_at).limit(excess)
            conn.execute(sa.delete(_KV).where(_KV.c.key.in_(oldest.scalar_subquery())))


class LoginLimits:
    """The windows the login form consults: per client address and per unknown user name."""

    def __init__(self, settings: ConsoleSettings) -> None:
        lockout = timedelta(seconds=settings.login_lockout)
        self.by_address = FailureWindow("address", settings.login_ip_max_failures,
                                        timedelta(seconds=settings.login_ip_window), lockout, settings.database_url)
        # A real account's counter has no window (it runs until a successful login), so an unknown
        # name gets a long one: probing slowly must not reveal which names exist.
        self.unknown_names = FailureWindow("name", settings.login_max_failures, UNKNOWN_NAME_WINDOW, lockout,
                                           settings.database_url)
