"""Helpers for reading what a test wrote to the store, and for throw-away PostgreSQL databases
(shared by the fixtures in ``tests/conftest.py`` and the seeding benchmark)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest
from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import SQLModel
from sqlmodel import select as select_model

from store.db import make_engine, session_scope

Row = TypeVar("Row", bound=SQLModel)


@contextmanager
def connected(url: str) -> Iterator[Connection]:
    """A connection on an engine of its own, disposed afterwards, so no pool outlives the check."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def rows(url: str, table: Table, *columns: str) -> list[tuple[object, ...]]:
    """The given columns of every row, ordered by the first, so that two books compare row by row."""
    with connected(url) as conn:
        cols = [table.c[c] for c in columns]
        return [tuple(r) for r in conn.execute(select(*cols).order_by(cols[0]))]


def count(url: str, table: Table) -> int:
    with connected(url) as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def inserted(url: str, row: SQLModel) -> int:
    """Writes ``row`` in a transaction of its own and answers the id the database gave it."""
    with session_scope(url) as s:
        s.add(row)
        s.flush()
        row_id = getattr(row, "id", None)
        assert isinstance(row_id, int)
        return row_id


def stored(url: str, model: type[Row], row_id: int) -> Row:
    """One row by id, which the test expects to exist."""
    with session_scope(url) as s:
        row = s.get(model, row_id)
        assert row is not None
        return row


def stored_rows(url: str, model: type[Row], **equal: object) -> list[Row]:
    """Every row of a model; a keyword with a value keeps only the rows with that value (``None`` or
    an empty string keeps them all)."""
    with session_scope(url) as s:
        return list(s.exec(select_model(model).filter_by(**{k: v for k, v in equal.items() if v})))


@contextmanager
def scratch_postgres_database(admin_url: str, name: str, *, keep: bool = False) -> Iterator[tuple[str, Engine]]:
    """Creates database ``name`` on the server of ``admin_url`` and drops it afterwards unless ``keep``;
    yields its URL and the admin engine (AUTOCOMMIT, for statements outside a transaction)."""
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin.url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url, admin
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def module_sqlite_book(factory: pytest.TempPathFactory, name: str) -> Iterator[str]:
    """A migrated SQLite file of a test module's own (a module-scoped fixture yields from it), which the
    module's Hypothesis examples rewrite rather than paying a migration each."""
    from store.db import get_engine
    from store.migrate import upgrade

    url = f"sqlite:///{factory.mktemp(name) / 'book.db'}"
    upgrade(url)
    yield url
    get_engine.cache_clear()
