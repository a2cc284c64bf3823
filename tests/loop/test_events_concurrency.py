"""Events emitted from many threads at once (the console's request threads): every event is stored
and acted on once, and on SQLite the writers take turns instead of piling into the busy handler."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlmodel import Session, select

import engine.loop.events as events_module
from engine.loop.events import emit_event
from store.db import get_engine, is_sqlite
from store.models import Event
from tests.plan_support import Book

COMPLAINT = """
id: complaint
name: Complaint
category: service
entry: {event: {type: complaint.filed}}
reentry: {allowed: true}
steps:
  - id: respond
    task: {queue: complaints, due_within: 24h}
"""

THREADS = 8
EVENTS = 40


@pytest.fixture
def book(book: Book) -> Book:
    """The shared book (tests/conftest.py) with this file's journeys."""
    book.journey("complaint", COMPLAINT)
    return book


def test_concurrent_emits_each_create_their_task_once(book: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    customers = [book.customer() for _ in range(EVENTS // 2)]
    with Session(get_engine(book.url)) as session:
        external = {c.id: c.external_id for c in session.exec(select(events_module.Customer)).all()}
    # Count how many emits are inside their database work at the same moment.
    inside = 0
    most_inside = 0
    runs = 0
    guard = threading.Lock()
    real_run = events_module.Planner.run

    def watched_run(self: Any) -> Any:
        nonlocal inside, most_inside, runs
        with guard:
            inside += 1
            runs += 1
            most_inside = max(most_inside, inside)
        try:
            threading.Event().wait(0.005)  # widen the window in which two runs could overlap
            return real_run(self)
        finally:
            with guard:
                inside -= 1

    monkeypatch.setattr(events_module.Planner, "run", watched_run)
    start = threading.Barrier(THREADS)

    def send(i: int) -> events_module.EmitResult:
        if i < THREADS:
            start.wait()  # the first wave leaves together
        customer = external[customers[i % len(customers)]]
        return emit_event("complaint.filed", customer, {"category": "service"}, event_id=f"E-{i}", url=book.url)

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(send, range(EVENTS)))

    assert all(r.created and r.tasks == 1 for r in results)
    tasks = book.tasks()
    assert len(tasks) == EVENTS
    assert len({t.key for t in tasks}) == EVENTS
    with Session(get_engine(book.url)) as session:
        rows = session.exec(select(Event)).all()
    assert len(rows) == EVENTS and all(r.processed_at is not None for r in rows)
    if is_sqlite(book.url):
        # One writer at a time: no emit waits inside SQLite's busy handler for another.
        assert most_inside == 1
    # Events that arrived while a run was going were planned together, each still counted as its own.
    assert runs < EVENTS
    # Repeats of the same ids from many threads are recognised, not acted on again.
    with ThreadPoolExecutor(THREADS) as pool:
        again = list(pool.map(send, range(EVENTS)))
    assert not any(r.created for r in again)
    assert len(book.tasks()) == EVENTS


def test_an_event_that_fails_fails_alone(book: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planned in one run with others, a failing event does not take their requests down with it."""
    external = [book.customer() for _ in range(EVENTS)]
    with Session(get_engine(book.url)) as session:
        by_id = {c.id: c.external_id for c in session.exec(select(events_module.Customer)).all()}
    real_run = events_module.Planner.run

    def failing_run(self: Any) -> Any:
        threading.Event().wait(0.005)  # let the other threads queue behind this run
        with Session(get_engine(book.url)) as s:
            ids = s.exec(select(Event.id).where(Event.external_id == "E-poison")).all()
        if ids and ids[0] in (self.event_ids or []):
            raise RuntimeError("this event cannot be planned")
        return real_run(self)

    monkeypatch.setattr(events_module.Planner, "run", failing_run)
    start = threading.Barrier(THREADS)

    def send(i: int) -> events_module.EmitResult | Exception:
        if i < THREADS:
            start.wait()
        event_id = "E-poison" if i == 3 else f"E-{i}"
        try:
            return emit_event("complaint.filed", by_id[external[i]], {}, event_id=event_id, url=book.url)
        except RuntimeError as exc:
            return exc

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(send, range(EVENTS)))

    assert isinstance(results[3], RuntimeError)
    assert all(isinstance(r, events_module.EmitResult) and r.tasks == 1 for i, r in enumerate(results) if i != 3)
    assert len(book.tasks()) == EVENTS - 1
    with Session(get_engine(book.url)) as session:
        poison = session.exec(select(Event).where(Event.external_id == "E-poison")).one()
    # Stored but not processed: the next plan run picks it up, as after a crash.
    assert poison.processed_at is None
