"""Events emitted from many threads at once (the console's request threads): every event is stored
and acted on once, and on SQLite the writers take turns instead of piling into the busy handler."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlmodel import Session, select

import engine.loop.events as events_module
from engine.loop.events import Incoming, UnknownCustomer, emit_event, emit_events
from store.db import get_engine, is_sqlite
from store.models import Event
from tests.events_support import COMPLAINT_TASK, task_journey
from tests.plan_support import Book

THREADS = 8
EVENTS = 40


@pytest.fixture
def book(book: Book) -> Book:
    """The shared book (tests/conftest.py) with this file's journeys."""
    book.journey("complaint", COMPLAINT_TASK)
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


ONCE = task_journey("once", "Once per customer", "survey.answered", "service_recovery", "6h", reentry=False,
                    step="call")


def test_many_events_are_stored_in_one_transaction_and_planned_in_few_runs(
        book: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    """``emit_events`` (what the API's batches call): one store transaction for the lot, one planner
    run per "round" of customers; repeats and unknown customers are answered, not acted on."""
    book.journey("once", ONCE)
    ids = [book.customer() for _ in range(EVENTS)]
    with Session(get_engine(book.url)) as session:
        external = {c.id: c.external_id for c in session.exec(select(events_module.Customer)).all()}
    stores = runs = 0
    real_store, real_run = events_module._store_together, events_module.Planner.run

    def counted_store(*args: Any) -> Any:
        nonlocal stores
        stores += 1
        return real_store(*args)

    def counted_run(self: Any) -> Any:
        nonlocal runs
        runs += 1
        return real_run(self)

    monkeypatch.setattr(events_module, "_store_together", counted_store)
    monkeypatch.setattr(events_module.Planner, "run", counted_run)
    incoming = [Incoming("complaint.filed", external[c], {}, f"K-{i}") for i, c in enumerate(ids)]
    # Two surveys of the same customer: the "once" journey takes the first in the list, never the second.
    incoming += [Incoming("survey.answered", external[ids[0]], {"nps": 3}, "S-first"),
                 Incoming("survey.answered", external[ids[0]], {"nps": 3}, "S-second")]
    incoming += [Incoming("complaint.filed", external[ids[1]], {}, "K-1"),  # a repeat in the same call
                 Incoming("complaint.filed", "nobody", {}, "K-nobody")]
    outcomes = emit_events(incoming, book.url)

    assert stores == 1
    # Round one: a complaint per customer; then each of the first customer's surveys in its own run.
    assert runs == 3
    results = [o for o in outcomes if isinstance(o, events_module.EmitResult)]
    assert all(r.created and r.tasks == 1 for r in results[:EVENTS])
    first, second, repeat = results[EVENTS:]
    assert (first.created, first.tasks, second.created, second.tasks) == (True, 1, True, 0)
    assert (repeat.created, repeat.tasks, repeat.event_id) == (False, 0, results[1].event_id)
    assert isinstance(outcomes[-1], UnknownCustomer)
    tasks = book.tasks()
    assert len(tasks) == EVENTS + 1
    [survey_task] = [t for t in tasks if t.journey_id == "once"]
    assert survey_task.occurrence == f"event-{first.event_id}"
    with Session(get_engine(book.url)) as session:
        rows = session.exec(select(Event)).all()
    assert len(rows) == EVENTS + 2 and all(r.processed_at is not None for r in rows)
    # Sent again (a sender retrying the whole lot), nothing is new and nothing is acted on again.
    again = emit_events(incoming[:-1], book.url)
    assert not any(isinstance(o, Exception) or o.created for o in again)
    assert len(book.tasks()) == EVENTS + 1


def test_events_emitted_together_from_threads_and_batches_are_each_acted_on_once(book: Book) -> None:
    """Single emits from request threads and batches from the API, at once, share the planner's queue."""
    ids = [book.customer() for _ in range(EVENTS)]
    with Session(get_engine(book.url)) as session:
        external = {c.id: c.external_id for c in session.exec(select(events_module.Customer)).all()}
    names = [external[c] for c in ids]
    start = threading.Barrier(4)

    def singles(offset: int) -> list[events_module.EmitResult]:
        start.wait()
        return [emit_event("complaint.filed", names[i], {}, event_id=f"T-{i}", url=book.url)
                for i in range(offset, EVENTS, 2)]

    def batch(offset: int) -> list[events_module.EmitResult | Exception]:
        start.wait()
        # The same ids as the single emits: each is stored once, whoever gets there first.
        return emit_events([Incoming("complaint.filed", names[i], {}, f"T-{i}") for i in range(offset, EVENTS, 2)],
                           book.url)

    with ThreadPoolExecutor(4) as pool:
        single_runs = [pool.submit(singles, 0), pool.submit(singles, 1)]
        batch_runs = [pool.submit(batch, 0), pool.submit(batch, 1)]
        outcomes: list[events_module.EmitResult | Exception] = [o for f in single_runs for o in f.result()]
        outcomes += [o for f in batch_runs for o in f.result()]
    assert not any(isinstance(o, Exception) for o in outcomes)
    created = [o for o in outcomes if isinstance(o, events_module.EmitResult) and o.created]
    assert len(created) == EVENTS and sum(o.tasks for o in created) == EVENTS
    assert len(book.tasks()) == EVENTS
