"""Console fixtures: a migrated SQLite database with users, customers and tasks, the app, logged-in clients."""

from __future__ import annotations

import logging
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import select
from starlette.testclient import TestClient

from console.app import create_app
from console.auth import CurrentUser, hash_password
from store.clock import utcnow
from store.db import session_scope
from store.migrate import upgrade
from store.models import AgentTask, AppUser, Customer, Policy
from tests.db_support import inserted
from tests.uvicorn_support import uvicorn_thread

PASSWORD = "correct-horse-1"
API_KEY = "test-api-key-0123456789"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
# Browser context options for the two widths every page is tested at.
DESK = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Seed:
    users: dict[str, int] = field(default_factory=dict)
    customers: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    now: datetime = field(default_factory=utcnow)


def add_task(session: object, key: str, customer_id: int, *, now: datetime, due_in: timedelta,
             assignee_id: int | None = None, queue: str = "callbacks", status: str = "open",
             journey_id: str = "gold-monthly-callback", script: str | None = "gold_monthly_callback",
             attempt: int = 1) -> int:
    task = AgentTask(key=key, customer_id=customer_id, journey_id=journey_id, journey_version="v1", step_id="call",
                     occurrence="2026-11", queue=queue, script=script, assignee_id=assignee_id, status=status,
                     due_at=now + due_in, created_at=now - timedelta(hours=1), attempt=attempt,
                     claimed_at=now if status == "claimed" else None)
    session.add(task)  # type: ignore[attr-defined]
    session.flush()  # type: ignore[attr-defined]
    assert task.id is not None
    return task.id


@lru_cache(maxsize=1)
def password_hash() -> str:
    # Hashed once: argon2 is deliberately slow, and every test seeds six users.
    return hash_password(PASSWORD)


def add_user(url: str, name: str, team: str | None, *, role: str = "agent", skills: list[str] | None = None,
             locale: str = "en", on_shift: bool = True) -> int:
    """A user besides the seed's (display name: ``name`` capitalised; password: ``PASSWORD``)."""
    return inserted(url, AppUser(username=name, display_name=name.capitalize(), role=role,
                                 password_hash=password_hash(), team=team, locale=locale, skills=skills or [],
                                 on_shift=on_shift, created_at=utcnow()))


def user(url: str, name: str) -> CurrentUser:
    """The user called ``name`` as the desk's functions take the signed-in user."""
    with session_scope(url) as s:
        return CurrentUser.of(s.exec(select(AppUser).where(AppUser.username == name)).one())


def update_user(url: str, name: str, **values: Any) -> None:
    """What an admin's edit of the user called ``name`` stores: each column given set to its value."""
    with session_scope(url) as s:
        row = s.exec(select(AppUser).where(AppUser.username == name)).one()
        for column, value in values.items():
            assert column in AppUser.model_fields, column  # a misspelt column would set nothing stored
            setattr(row, column, value)
        s.add(row)


def seed_console(url: str | None = None) -> Seed:
    seed = Seed()
    now = seed.now
    with session_scope(url) as s:
        for name, role, team, locale in [
            ("ann", "agent", "a", "en"), ("bob", "agent", "a", "zh-CN"), ("cara", "agent", "b", "en"),
            ("sue", "supervisor", "a", "en"), ("olga", "ops", None, "en"), ("adam", "admin", None, "en"),
        ]:
            user = AppUser(username=name, display_name=name.capitalize(), role=role, password_hash=password_hash(),
                           team=team, locale=locale, created_at=now)
            s.add(user)
            s.flush()
            assert user.id is not None
            seed.users[name] = user.id
        for ext, cname, tier, phone, email, advisor in [
            ("C1", "张三丰", "gold", "+8613812345678", "sanfeng@example.com", None),
            ("C2", "李四", "diamond", "+8613900001111", "lisi@example.com", "ann"),
            ("C3", "王五", "silver", "+8613700002222", None, None),
        ]:
            c = Customer(external_id=ext, name=cname, tier=tier, phone=phone, email=email, branch="上海分公司",
                         advisor_id=seed.users[advisor] if advisor else None, consent_sms=True,
                         created_at=now, updated_at=now)
            s.add(c)
            s.flush()
            assert c.id is not None
            seed.customers[ext] = c.id
        s.add(Policy(external_id="P1", customer_id=seed.customers["C1"], product_line="health", annual_premium=1280.0,
                     start_date=(now - timedelta(days=300)).date(), expiry_date=(now + timedelta(days=65)).date()))
        seed.tasks["ann_first"] = add_task(s, "t-ann-1", seed.customers["C1"], now=now, due_in=timedelta(hours=2),
                                           assignee_id=seed.users["ann"])
        seed.tasks["ann_second"] = add_task(s, "t-ann-2", seed.customers["C3"], now=now, due_in=timedelta(hours=5),
                                            assignee_id=seed.users["ann"])
        seed.tasks["free"] = add_task(s, "t-free", seed.customers["C3"], now=now, due_in=timedelta(hours=1))
        seed.tasks["bob"] = add_task(s, "t-bob", seed.customers["C1"], now=now, due_in=timedelta(hours=3),
                                     assignee_id=seed.users["bob"], status="claimed")
        seed.tasks["cara"] = add_task(s, "t-cara", seed.customers["C3"], now=now, due_in=timedelta(hours=3),
                                      assignee_id=seed.users["cara"])
    return seed


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def viewport_width(page: Any) -> int:
    """The width of the screen a page is shown on. Not ``window.innerWidth``: on an emulated phone the window
    grows with a page that overflows it (390 px read 559), so a check against it passes a page that scrolls
    sideways; the viewport the test set is the screen."""
    size = page.viewport_size
    assert size is not None
    return int(size["width"])


def assert_fits(page: Any) -> None:
    """The page does not scroll sideways on its screen."""
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= viewport_width(page) + 1, (page.url, wide, viewport_width(page))


@pytest.fixture
def statements() -> Iterator[list[tuple[str, Any]]]:
    """Every statement any engine sends while the test runs, with its parameters: what a page asks of the
    store, for counting (a page must not ask more for a bigger branch) and for EXPLAINing."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        sent.append((statement, parameters))

    sa.event.listen(Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(Engine, "before_cursor_execute", record)


@pytest.fixture(autouse=True)
def _unrenderable_scripts_fail(request: pytest.FixtureRequest) -> Iterator[list[logging.LogRecord]]:
    """A call script that cannot be rendered fails the test that met it (the console logs it at ERROR).

    Tests that break a script on purpose ask for ``script_errors`` and check the records themselves.
    """
    handler = _Records()
    logger = logging.getLogger("console.scripts")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
    if handler.records and "script_errors" not in request.fixturenames:
        pytest.fail("call script could not be rendered: " + "; ".join(r.getMessage() for r in handler.records))


@pytest.fixture
def script_errors(_unrenderable_scripts_fail: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return _unrenderable_scripts_fail


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console-template") / "journeys.db"
    upgrade(f"sqlite:///{path}")
    # Fold any write-ahead log into the file so a plain copy carries the whole schema.
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def db_url(migrated_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite database (a copy of one migrated once per session), set as JOURNEYS_DATABASE_URL."""
    target = tmp_path / "journeys.db"
    shutil.copyfile(migrated_template, target)
    url = f"sqlite:///{target}"
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", url)
    return url


@pytest.fixture
def console_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_SECRET_KEY", "test-only-session-key-not-secret")
    monkeypatch.setenv("JOURNEYS_API_KEYS", f"other-key, {API_KEY}")
    monkeypatch.setenv("JOURNEYS_ASSIGNMENT", "least_loaded")
    # No background desk round in a test's app: tests run it themselves, or ask for the timer.
    monkeypatch.setenv("JOURNEYS_DESK_EVERY", "0")


class FakeClock:
    """The app's clock, moved by the test: time passes without waiting."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def seed(db_url: str) -> Seed:
    return seed_console(db_url)


@pytest.fixture
def app(db_url: str, console_env: None, seed: Seed) -> FastAPI:
    return create_app(db_url)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@contextmanager
def app_clients(new_app: Callable[[], FastAPI]) -> Iterator[Callable[..., TestClient]]:
    """Makes test clients, each of a new app from ``new_app`` unless given one (apps on one database stand
    for worker processes), from ``address``; closes every client made on leaving."""
    clients: list[TestClient] = []

    def make(app: FastAPI | None = None, address: str = "testclient") -> TestClient:
        c = TestClient(app or new_app(), base_url="http://testserver", client=(address, 50000))
        clients.append(c)
        return c

    try:
        yield make
    finally:
        for c in clients:
            c.close()


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token."""
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(client.get(response.headers["location"]).text)


@contextmanager
def serving(app: FastAPI, *, start_within: float = 30, stop_within: float = 10) -> Iterator[str]:
    """``app`` under uvicorn on an ephemeral port, in a thread of this process; yields its base URL."""
    with uvicorn_thread(app, start_within=start_within, stop_within=stop_within) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def server(db_url: str, console_env: None, seed: Seed) -> Iterator[str]:
    """The console under uvicorn on an ephemeral port, in a thread of this process."""
    with serving(create_app(db_url)) as base:
        yield base


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[object]:
    """Headless Chromium driven by Playwright (skipped when Playwright is not installed)."""
    playwright_sync = pytest.importorskip("playwright.sync_api")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


def log_in_page(page: Any, username: str, password: str = PASSWORD, *, lands_on: str | None = "**/inbox") -> Any:
    """Log ``username`` in through the login form of a Playwright ``page``; waits for ``lands_on`` (a URL glob)."""
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    if lands_on is not None:
        page.wait_for_url(lands_on)
    return page


# Opens a fresh browser context (``device``: Playwright context options, default DESK), logs the user in
# and returns the page; keyword ``lands_on`` is the URL glob the login ends on.
PageFactory = Callable[..., Any]


@pytest.fixture
def new_page(browser: Any, server: str) -> Iterator[PageFactory]:
    contexts: list[Any] = []

    def make(username: str, device: dict[str, Any] | None = None, *, lands_on: str = "**/inbox") -> Any:
        context = browser.new_context(base_url=server, **(device or DESK))
        contexts.append(context)
        return log_in_page(context.new_page(), username, lands_on=lands_on)

    yield make
    for context in contexts:
        context.close()
