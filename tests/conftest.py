"""Shared fixtures: databases (SQLite file, PostgreSQL), paths, and the rules for external services.

PostgreSQL tests read ``JOURNEYS_TEST_POSTGRES_URL``. Without it they are skipped and
the run says so; with ``JOURNEYS_REQUIRE_POSTGRES=1`` (set by .ci/run) a missing or
unreachable server fails them instead. The same holds for Chromium with
``JOURNEYS_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
# No deadline: Hypothesis' 200 ms per example is a timed test, and failed a name test on a machine at
# load 4-6 (517 ms for a first call); speed is measured in benchmarks/, never asserted here.
hypothesis_settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True, deadline=None)
hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# The CLI lays out its tables for COLUMNS when it is set (engine.cli.output, read when it is imported):
# what the tests read of its output must not depend on the terminal of whoever runs them, nor on the
# COLUMNS=80 that pytest-xdist's workers start with. A test that wants a width sets it.
for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)

# Prefect's home (its SQLite database, settings, logs) is this test process's own unless the caller
# chose one: two pytest workers would otherwise start local servers on one ~/.prefect database, and a
# run would leave its flow runs in the user's. Set before anything imports Prefect, which reads it then.
_PREFECT_HOME = None if os.environ.get("PREFECT_HOME") else tempfile.mkdtemp(prefix="journeys-tests-prefect-")
if _PREFECT_HOME:
    os.environ["PREFECT_HOME"] = _PREFECT_HOME

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


# ---- processes and servers a test starts: stopped when it ends, even when it failed -------------

SPAWN_MARK = "JOURNEYS_TEST_SPAWN"


def marked_processes(mark: str) -> list[int]:
    """Live processes whose environment carries ``SPAWN_MARK=mark``: what a test started, and
    everything those started in turn (Prefect's server, workers' flow runs), wherever they moved."""
    wanted = f"{SPAWN_MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":  # a zombie has already ended; its parent has not read its status yet
                    found.append(int(entry.name))
        except OSError:
            continue  # ended meanwhile, or not ours to read
    return found


def _end_group(proc: subprocess.Popen[Any], grace: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of its group is left
    proc.wait(10)


class Spawned:
    """Processes started by one test, each in a process group of its own, marked in its environment."""

    def __init__(self) -> None:
        self.mark = uuid.uuid4().hex
        self.procs: list[subprocess.Popen[Any]] = []

    def __call__(self, args: list[str], *, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[Any]:
        env = {**(os.environ if env is None else env), SPAWN_MARK: self.mark}
        proc: subprocess.Popen[Any] = subprocess.Popen(args, env=env, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def left_running(self) -> list[int]:
        return marked_processes(self.mark)

    def left_after(self, within: float = 60.0, but: int | None = None) -> list[int]:
        """What ``left_running`` holds (but ``but``) once ``within`` seconds have passed; [] as soon as
        nothing is left."""
        deadline = time.monotonic() + within
        while (left := [p for p in self.left_running() if p != but]) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def end_all(self, grace: float = 20.0) -> None:
        for proc in reversed(self.procs):
            _end_group(proc, grace)
        deadline = time.monotonic() + 10
        while (left := marked_processes(self.mark)) and time.monotonic() < deadline:
            for pid in left:  # started by this test's processes but outside their group (a new session)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)


@pytest.fixture
def spawn() -> Iterator[Spawned]:
    """``spawn([...], env=..., cwd=...)`` starts a process like ``subprocess.Popen``; when the test ends,
    passed or failed, it and everything it started are stopped (SIGTERM to its group, then SIGKILL)."""
    spawned = Spawned()
    try:
        yield spawned
    finally:
        spawned.end_all()


@pytest.fixture(scope="session", autouse=True)
def _stop_prefect_servers() -> Iterator[None]:
    """Prefect's local server, if a test in this process started one (a flow run starts it by itself):
    stopped when the session ends rather than left to an exit hook that a killed run never reaches."""
    yield
    if "prefect.server.api.server" in sys.modules:
        from engine.runtime.local_engine import stop_local_engine

        stop_local_engine()
    if _PREFECT_HOME:
        shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


HOG = [sys.executable, "-c", "while True: pass"]


@pytest.fixture
def busy_machine() -> Iterator[Callable[[int], None]]:
    """``busy_machine(n)`` starts ``n`` CPU-bound processes beside the test; they are killed when it ends."""
    hogs = Spawned()

    def start(n: int = 2) -> None:
        for _ in range(n):
            hogs(HOG, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    try:
        yield start
    finally:
        hogs.end_all(grace=0)
