"""Shared fixtures: databases (SQLite file, PostgreSQL), paths, and the rules for external services.

PostgreSQL tests read ``JOURNEYS_TEST_POSTGRES_URL``. Without it they are skipped and
the run says so; with ``JOURNEYS_REQUIRE_POSTGRES=1`` (set by .ci/run) a missing or
unreachable server fails them instead. The same holds for Chromium with
``JOURNEYS_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text

from store.db import get_engine, make_engine
from store.migrate import upgrade
from tests.db_support import scratch_postgres_database
from tests.plan_support import Book

# Every run of the suite, in CI or not, explores the same fixed sequence of examples: the README's
# test command must pass the same way on any machine. Fresh exploration is opt-in
# (HYPOTHESIS_PROFILE=explore), which is how the fuzz tests keep finding new bugs.
hypothesis_settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

ROOT = Path(__file__).resolve().parent.parent
PG_ENV = "JOURNEYS_TEST_POSTGRES_URL"
CHROMIUM_ENV = "JOURNEYS_CHROMIUM"


def _required(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    if os.environ.get(PG_ENV):
        lines.append(f"postgres: tests run against {PG_ENV}")
    else:
        lines.append(f"postgres: {PG_ENV} is not set, so PostgreSQL tests are SKIPPED")
    chromium = chromium_path()
    lines.append(f"browser: {chromium}" if chromium else "browser: no Chromium found, browser tests are SKIPPED")
    return lines


def chromium_path() -> str | None:
    return os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if not path:
        if _required("JOURNEYS_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required (JOURNEYS_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("Chromium not installed: browser tests skipped (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if _required("JOURNEYS_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required (JOURNEYS_REQUIRE_POSTGRES=1) but {PG_ENV} is not set")
        pytest.skip(f"{PG_ENV} not set: PostgreSQL tests skipped")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # unreachable server
        if _required("JOURNEYS_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL at {PG_ENV} is unreachable: {exc}")
        pytest.skip(f"PostgreSQL at {PG_ENV} unreachable: {exc}")
    finally:
        engine.dispose()
    return url


def _fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A throw-away database on the PostgreSQL server, dropped afterwards."""
    with scratch_postgres_database(admin_url, f"journeys_t_{uuid.uuid4().hex[:12]}") as (url, _admin):
        try:
            yield url
        finally:
            get_engine.cache_clear()  # the cached engines' pools point at a database about to go


@pytest.fixture
def pg_url(postgres_admin_url: str) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database."""
    yield from _fresh_postgres_database(postgres_admin_url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite file (not yet migrated)."""
    return f"sqlite:///{tmp_path / 'journeys.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind: the test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'journeys.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin_url")
        yield from _fresh_postgres_database(admin)


@pytest.fixture
def db_url(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite database, also set as JOURNEYS_DATABASE_URL for code and CLI under test."""
    upgrade(sqlite_url)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", sqlite_url)
    return sqlite_url


@pytest.fixture
def migrated_any_db(any_db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    upgrade(any_db_url)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", any_db_url)
    return any_db_url


@pytest.fixture
def book(tmp_path: Path, migrated_any_db: str, monkeypatch: pytest.MonkeyPatch) -> Book:
    """Journey and template folders of the test's own over a migrated database of each kind."""
    return Book(tmp_path, migrated_any_db, monkeypatch)


@pytest.fixture
def sqlite_book(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Book:
    """The same on SQLite only, for what needs no second run (CLI output, charts, SQLite triggers)."""
    return Book(tmp_path, db_url, monkeypatch)


@pytest.fixture(autouse=True)
def _fresh_engines() -> Iterator[None]:
    """Engines are cached per URL; tests use throw-away databases, so drop them after each test."""
    yield
    get_engine.cache_clear()


@pytest.fixture
def project_root() -> Path:
    return ROOT
