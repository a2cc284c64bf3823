"""The login limits per client address and per unknown name hold across console processes.

They were kept in each process's memory: with several uvicorn workers an address had the limit
once per worker, and a restart forgot every count and block. Two apps on one database stand for
two workers (and a third for a restart); time is moved with an injected clock, never waited for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from console import throttle
from console.app import create_app
from store.db import make_engine
from store.models import KeyValue
from tests.console.conftest import PASSWORD, FakeClock, app_clients, csrf_of, seed_console

KV: sa.Table = KeyValue.__table__  # type: ignore[attr-defined]


@pytest.fixture
def worker(migrated_any_db: str, console_env: None, clock: FakeClock) -> Iterator[Callable[..., TestClient]]:
    """A client of a new app (a new worker process) on the shared database, from ``address``."""
    seed_console(migrated_any_db)
    with app_clients(lambda: create_app(migrated_any_db, clock=clock)) as make:
        yield lambda address="198.51.100.7": make(address=address)


def post_login(c: TestClient, username: str, password: str) -> Any:
    token = csrf_of(c.get("/login", headers={"Accept-Language": "en"}).text)
    return c.post("/login", data={"username": username, "password": password, "csrf_token": token},
                  headers={"Accept-Language": "en"}, follow_redirects=False)


def test_an_address_gets_its_limit_once_over_every_worker(worker: Callable[..., TestClient], clock: FakeClock,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_LOGIN_IP_MAX_FAILURES", "3")
    first, second = worker("203.0.113.9"), worker("203.0.113.9")
    assert post_login(first, "ann", "guess-one").status_code == 401
    assert post_login(second, "bob", "guess-two").status_code == 401
    third = post_login(first, "guess-name", "guess-three")
    assert third.status_code == 429 and "Try again in 15 minutes." in third.text
    # Refused by the other worker too, and by one started afterwards, the right password unchecked.
    assert post_login(second, "ann", PASSWORD).status_code == 429
    assert post_login(worker("203.0.113.9"), "ann", PASSWORD).status_code == 429
    assert post_login(worker("192.0.2.44"), "ann", PASSWORD).status_code == 303  # another address
    clock.advance(minutes=15, seconds=1)
    assert post_login(second, "ann", PASSWORD).status_code == 303


def test_an_unknown_name_gets_its_limit_once_over_every_worker(worker: Callable[..., TestClient]) -> None:
    first, second = worker(), worker()
    answers = [post_login(c, "nobody", "whatever-pass").status_code for c in (first, second, first, second, second)]
    assert answers == [401, 401, 401, 401, 429]
    assert post_login(worker(), "Nobody", "whatever-pass").status_code == 429  # after a restart too


def test_the_counts_kept_are_bounded_and_leave_with_their_window(migrated_any_db: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle, "MAX_KEYS", 3)
    window = throttle.FailureWindow("name", 2, timedelta(minutes=10), timedelta(minutes=15), migrated_any_db)
    now = FakeClock().now
    assert window.fail("held", now) is None
    until = window.fail("held", now)
    assert until == now + timedelta(minutes=15)
    for i in range(5):  # a flood of names: the oldest counts go, never past the bound
        assert window.fail(f"name-{i}", now + timedelta(seconds=i)) is None
    engine = make_engine(migrated_any_db)

    def rows(prefix: str) -> list[str]:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(KV.c.key).where(KV.c.key.startswith(prefix))).scalars())

    assert len(rows("login_failures:name:")) == 3 and len(rows("login_block:name:")) == 1
    assert window.blocked_until("held", now + timedelta(minutes=1)) == until  # the block is not evicted
    # No name typed in is kept as such.
    assert not any("name-" in key or "held" in key for key in rows("login_"))
    # Past their window and block, the rows go when the next new key is counted.
    later = now + timedelta(minutes=16)
    assert window.blocked_until("held", later) is None
    window.fail("late", later)
    assert len(rows("login_failures:name:")) == 1 and rows("login_block:name:") == []
    engine.dispose()
