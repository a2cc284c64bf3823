"""Database connection: SQLite file by default, PostgreSQL when JOURNEYS_DATABASE_URL says so."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

DEFAULT_SQLITE_PATH = Path("var") / "journeys.db"


def database_url() -> str:
    """``JOURNEYS_DATABASE_URL`` or the embedded default, ``sqlite:///var/journeys.db`` (relative to cwd)."""
    url = os.environ.get("JOURNEYS_DATABASE_URL", "").strip()
    if url:
        # Accept the common ``postgresql://`` spelling and drive it with psycopg 3.
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


# The adapter of NoneType (see ``bind_none_as_null``): ``{}.get(None)`` is None, with no Python frame.
_NONE_AS_ITSELF: dict[None, None] = {}


def bind_none_as_null() -> None:
    """Have the sqlite3 module bind ``None`` as NULL without its adaptation search.

    The module binds int, float and str straight away but treats every other value, ``None``
    included, as one to adapt: a look-up in its adapter registry, then of ``__adapt__`` on its
    protocol type and ``__conform__`` on the value, where Python 3.11 builds and throws away an
    AttributeError (message formatted) for each of the two misses. That was about 0.35 µs per
    NULL bound, a third of a bulk insert's time for a row with ten empty columns
    (benchmarks/README.md). An adapter registered for NoneType is found by the first look-up and
    hands back the None, which the module binds as NULL as before: what is stored is the same.
    Process-wide (the registry is the module's) and idempotent."""
    sqlite3.register_adapter(type(None), _NONE_AS_ITSELF.get)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (console, receipts) run while the planner writes; busy_timeout
    # makes a second writer wait instead of failing with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    url = url or database_url()
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        bind_none_as_null()
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process."""
    return make_engine(url or database_url())


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = Session(get_engine(url), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
