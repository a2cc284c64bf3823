"""A burst of concurrent ``POST /api/events`` through a real uvicorn server, on SQLite and PostgreSQL.

Every event is stored once and acted on once, repeats of an event id (sent at the same moment
as their original) are answered as repeats, and the touches and tasks the burst leaves are
exactly those of the same events sent one at a time to a second console over a second database
(a differential test). A second test kills the server in the middle of a burst: every event it
answered 201 is in the store with its task, and a ``plan`` run afterwards acts on what was
stored but not yet answered, once. No timing is asserted; the speed is benchmarks/event_burst.py's.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from console.app import create_app
from engine.planning.planner import plan
from store.clock import utcnow
from store.migrate import upgrade
from tests.console.conftest import API_KEY, serving
from tests.db_support import connected, scratch_postgres_database
from tests.events_support import COMPLAINT, SMALL_CLAIM, reentering
from tests.plan_support import Book

ROOT = Path(__file__).resolve().parents[2]

# Each event's touches and tasks depend on that event alone (re-entry allowed everywhere), so the
# order in which a burst's events reach the planner cannot change what they create.
JOURNEYS = {
    "complaint": reentering(COMPLAINT),
    "small-claim": reentering(SMALL_CLAIM),
    "negative": """
        id: negative
        name: Negative feedback
        category: service
        entry:
          event:
            type: survey.answered
            when: {field: event.data.nps, op: le, value: 6}
        reentry: {allowed: true}
        steps:
          - id: callback
            task: {queue: callback, due_within: 6h}
    """,
}
CUSTOMERS = 40
# Yesterday 14:00 in Shanghai: in the past (an event from the future runs alone, up to its own
# time), and outside quiet hours.
OCCURRED = (utcnow() - timedelta(days=1)).replace(hour=6, minute=0, second=0, microsecond=0)
PER_CUSTOMER = 6  # distinct events per customer, of mixed types
REPEATS = 60  # requests repeating the id (and body) of another request of the burst


def _events(seed: int) -> list[dict[str, Any]]:
    """The burst's request bodies: distinct events, then repeats of some, shuffled together."""
    rng = random.Random(seed)
    occurred = OCCURRED.isoformat()
    bodies = []
    for c in range(1, CUSTOMERS + 1):
        for k in range(PER_CUSTOMER):
            kind = ("complaint.filed", "claim.filed", "survey.answered")[k % 3]
            data: dict[str, Any] = {"category": "service"}
            if kind == "claim.filed":
                data = {"claim_id": f"CL-{c}-{k}", "amount": rng.choice([800.0, 12000.0])}
            elif kind == "survey.answered":
                data = {"nps": rng.randint(0, 10)}
            bodies.append({"event_id": f"ev-{c}-{k}", "type": kind, "customer_id": f"C{c:05d}",
                           "occurred_at": occurred, "data": data})
    repeats = [dict(b) for b in rng.sample(bodies, REPEATS)]
    burst = bodies + repeats
    rng.shuffle(burst)
    return burst


def _book(root: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Book:
    upgrade(url)
    book = Book(root, url, monkeypatch)
    for name, source in JOURNEYS.items():
        book.journey(name, source)
    for _ in range(CUSTOMERS):
        book.customer()
    return book


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh databases of the same kind: the burst's and the one-at-a-time reference's."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'burst.db'}", f"sqlite:///{tmp_path / 'reference.db'}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    suffix = os.urandom(4).hex()
    with scratch_postgres_database(admin, f"journeys_t_burst_{suffix}") as (burst, _), \
            scratch_postgres_database(admin, f"journeys_t_ref_{suffix}") as (reference, _):
        try:
            yield burst, reference
        finally:
            from store.db import get_engine

            get_engine.cache_clear()  # the cached engines' pools point at databases about to go


def console_in_thread(url: str) -> AbstractContextManager[str]:
    """The console under uvicorn on ``url``'s database; a burst's server may be slow to start and stop."""
    return serving(create_app(url), start_within=60, stop_within=30)


async def _post_all(base: str, bodies: list[dict[str, Any]], *,
                    at_once: bool) -> list[tuple[int | None, dict[str, Any]]]:
    """(status, answer) per body: every request in flight at once, or one after another."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def post(body: dict[str, Any]) -> tuple[int | None, dict[str, Any]]:
            try:
                async with session.post(f"{base}/api/events", json=body, headers={"X-API-Key": API_KEY}) as resp:
                    answer = await resp.json(content_type=None)
            except (aiohttp.ClientError, OSError):
                return None, {}  # the server went away (the kill test)
            return resp.status, answer

        if at_once:
            return list(await asyncio.gather(*(post(b) for b in bodies)))
        return [await post(b) for b in bodies]


def _created(url: str) -> dict[str, Counter[tuple[str, str, str]]]:
    """Touches and tasks per (journey, step, event id of the sender), whatever their status."""
    out: dict[str, Counter[tuple[str, str, str]]] = {}
    with connected(url) as conn:
        for table in ("touch", "agent_task"):
            out[table] = Counter((j, s, e) for j, s, e in conn.execute(text(
                f"SELECT t.journey_id, t.step_id, e.external_id FROM {table} t JOIN event e "
                "ON t.occurrence = 'event-' || CAST(e.id AS VARCHAR(20))")))
    return out


def _events_stored(url: str) -> Counter[str]:
    with connected(url) as conn:
        return Counter(e for (e,) in conn.execute(text("SELECT external_id FROM event")))


def _receipts(url: str) -> set[object]:
    with connected(url) as conn:
        return {r for (r,) in conn.execute(text("SELECT DISTINCT received_at FROM event"))}


def _unprocessed(url: str) -> int:
    return _processed(url)[1]


def _processed(url: str) -> tuple[int, int]:
    """Events acted on, and events stored but not yet acted on."""
    with connected(url) as conn:
        done, waiting = conn.execute(text(
            "SELECT COUNT(processed_at), COUNT(*) - COUNT(processed_at) FROM event")).one()
    return int(done), int(waiting)


@pytest.mark.usefixtures("console_env")
def test_a_burst_is_stored_and_acted_on_once_as_one_at_a_time(
        two_databases: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    burst_url, reference_url = two_databases
    burst_book = _book(tmp_path, burst_url, monkeypatch)
    _book(tmp_path, reference_url, monkeypatch)
    bodies = _events(seed=5)
    distinct = {b["event_id"] for b in bodies}
    with console_in_thread(burst_url) as base:
        answers = asyncio.run(_post_all(base, bodies, at_once=True))
    with console_in_thread(reference_url) as base:
        reference = asyncio.run(_post_all(base, bodies, at_once=False))

    for got in (answers, reference):
        assert all(status in (200, 201) for status, _ in got), [a for a in got if a[0] not in (200, 201)][:3]
        # Each id answered "created" exactly once, every repeat answered as one.
        created = Counter(a["event_id"] for status, a in got if status == 201 and a["created"])
        assert set(created) == distinct and set(created.values()) == {1}
        assert sum(1 for status, a in got if status == 200 and not a["created"]) == REPEATS
    # The burst went into the store in batches (one transaction, one receipt time, for the requests
    # that arrived together), not one request at a time.
    assert len(_receipts(burst_url)) < len(distinct) // 2
    assert _events_stored(burst_url) == Counter(distinct) == _events_stored(reference_url)
    assert _unprocessed(burst_url) == 0 == _unprocessed(reference_url)
    # The differential: the same touches and tasks, event by event, as one at a time.
    made, expected = _created(burst_url), _created(reference_url)
    assert made == expected
    assert max(made["agent_task"].values()) == 1 and max(made["touch"].values()) == 1
    assert sum(expected["agent_task"].values()) > CUSTOMERS  # the journeys did act
    # What the answers reported is what the store holds.
    assert sum(a["tasks"] for _, a in answers) == sum(made["agent_task"].values()) == len(burst_book.tasks())
    assert sum(a["tasks"] for _, a in answers) == sum(a["tasks"] for _, a in reference)
    assert sum(a["touches"] for _, a in answers) == sum(a["touches"] for _, a in reference)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.usefixtures("console_env")
def test_answered_events_survive_the_server_being_killed_mid_burst(
        two_databases: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = two_databases
    _book(tmp_path, url, monkeypatch)
    # Complaints only (one task each), several per customer: a batch takes a planner run per
    # customer "round", so the server is killed with events in every state: answered, committed
    # but not yet acted on, acted on but not answered, not stored at all.
    occurred = OCCURRED.isoformat()
    bodies = [{"event_id": f"k-{i}", "type": "complaint.filed", "customer_id": f"C{i % CUSTOMERS + 1:05d}",
               "occurred_at": occurred, "data": {}} for i in range(8 * CUSTOMERS)]
    port = _free_port()
    env = dict(os.environ, JOURNEYS_DATABASE_URL=url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "console.app:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, "the console exited"
            try:
                with urllib.request.urlopen(f"{base}/api/openapi.json", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the console did not come up"
                time.sleep(0.2)
        done = threading.Event()

        def kill_between_store_and_plan() -> None:
            # Killed once a first event is acted on and a later batch is committed but not yet all
            # acted on (no shutdown, nothing flushed); should the server be too quick for this to
            # see that moment, it is not killed and answers everything.
            while not done.is_set():
                acted, waiting = _processed(url)
                if acted > 0 and waiting > 0:
                    proc.send_signal(signal.SIGKILL)
                    return
                time.sleep(0.002)

        watcher = threading.Thread(target=kill_between_store_and_plan)
        watcher.start()
        try:
            answers = asyncio.run(_post_all(base, bodies, at_once=True))
        finally:
            done.set()
            watcher.join()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)

    acknowledged = {a["event_id"] for status, a in answers if status == 201}
    stored = _events_stored(url)
    tasks = _created(url)["agent_task"]
    # Every event answered 201 was committed, and acted on, before its answer.
    assert acknowledged <= set(stored)
    assert all(tasks[("complaint", "respond", e)] == 1 for e in acknowledged)
    # What was stored but not yet acted on when the process died is acted on by the next plan, once.
    plan(utcnow() + timedelta(minutes=1), OCCURRED - timedelta(days=1), url=url)
    plan(utcnow() + timedelta(minutes=1), OCCURRED - timedelta(days=1), url=url)
    assert _unprocessed(url) == 0
    tasks = _created(url)["agent_task"]
    assert set(stored.values()) <= {1}
    assert {e: tasks[("complaint", "respond", e)] for e in stored} == {e: 1 for e in stored}
