"""Events from the console: ``emit`` on a worker thread, ``emit_async`` (the API) batched per event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import select

import engine.loop.events as planner_events
from console import events_bridge
from console.events_bridge import Incoming
from store.db import session_scope
from store.models import AgentTask, Event
from tests.console.conftest import Seed
from tests.events_support import COMPLAINT_TASK
from tests.plan_support import Book


@pytest.fixture
def journeys(tmp_path: Any, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Book:
    book = Book(tmp_path, db_url, monkeypatch)
    book.journey("complaint", COMPLAINT_TASK)
    return book


def test_emit_stores_acts_and_answers_repeats(db_url: str, seed: Seed, journeys: Book) -> None:
    first = events_bridge.emit("complaint.filed", "C1", {"source": "agent_task"}, event_id="e-1", db_url=db_url)
    again = events_bridge.emit("complaint.filed", "C1", {"source": "agent_task"}, event_id="e-1", db_url=db_url)
    assert (first.event_id, first.created, first.tasks) == ("e-1", True, 1)
    assert (again.event_id, again.created, again.tasks) == ("e-1", False, 0)
    with session_scope(db_url) as s:
        [row] = s.exec(select(Event)).all()
        assert row.customer_id == seed.customers["C1"] and row.processed_at is not None
    with pytest.raises(events_bridge.UnknownCustomer):
        events_bridge.emit("complaint.filed", "NOBODY", {}, event_id="e-2", db_url=db_url)


def test_emit_async_batches_what_arrives_together(db_url: str, seed: Seed, journeys: Book,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = planner_events.emit_events

    def counted(events: list[planner_events.Incoming], url: str | None = None) -> Any:
        calls.append(len(events))
        return real(events, url)

    monkeypatch.setattr(planner_events, "emit_events", counted)
    customers = ["C1", "C2", "C3"]

    async def burst() -> list[events_bridge.Emitted | BaseException]:
        sends = [events_bridge.emit_async(Incoming("complaint.filed", customers[i % 3], {}, f"a-{i % 25}"), db_url)
                 for i in range(30)]
        sends.append(events_bridge.emit_async(Incoming("complaint.filed", "NOBODY", {}, "a-nobody"), db_url))
        return await asyncio.gather(*sends, return_exceptions=True)

    outcomes = asyncio.run(burst())
    # Every request queued before the drain ran: one batch, one call.
    assert calls == [31]
    assert isinstance(outcomes[-1], events_bridge.UnknownCustomer)
    answers = [o for o in outcomes[:-1] if isinstance(o, events_bridge.Emitted)]
    assert len(answers) == 30
    created = [a for a in answers if a.created]
    assert sorted(a.event_id for a in created) == sorted(f"a-{i}" for i in range(25))
    assert all(a.tasks == 1 for a in created) and all(a.tasks == 0 for a in answers if not a.created)
    with session_scope(db_url) as s:
        assert len(s.exec(select(Event)).all()) == 25
        assert len(s.exec(select(AgentTask).where(AgentTask.journey_id == "complaint")).all()) == 25


def test_a_request_that_gives_up_does_not_lose_its_event(db_url: str, seed: Seed, journeys: Book) -> None:
    """The client hung up (its request task cancelled) after sending: the event is stored and acted on."""

    async def hang_up() -> events_bridge.Emitted:
        gone = asyncio.create_task(events_bridge.emit_async(Incoming("complaint.filed", "C1", {}, "gone"), db_url))
        await asyncio.sleep(0)  # queued
        gone.cancel()
        # A later request on the same loop is answered, and by then the cancelled one's batch is done.
        return await events_bridge.emit_async(Incoming("complaint.filed", "C2", {}, "later"), db_url)

    later = asyncio.run(hang_up())
    assert later.created
    with session_scope(db_url) as s:
        events = {e.external_id: e for e in s.exec(select(Event)).all()}
        assert set(events) == {"gone", "later"} and all(e.processed_at is not None for e in events.values())
        assert len(s.exec(select(AgentTask).where(AgentTask.journey_id == "complaint")).all()) == 2
