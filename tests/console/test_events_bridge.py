"""Events from the console go through ``engine.loop.events.emit_event`` once it exists, else are stored here."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import select

from console import events_bridge
from store.db import session_scope
from store.models import Event
from tests.console.conftest import Seed


def test_without_the_planner_the_event_is_stored_once(db_url: str, seed: Seed,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "engine.loop.events", None)  # as if the module did not exist
    first = events_bridge.emit("complaint.filed", "C1", {"source": "agent_task"}, event_id="e-1", db_url=db_url)
    again = events_bridge.emit("complaint.filed", "C1", {"source": "agent_task"}, event_id="e-1", db_url=db_url)
    assert first.created and not again.created
    with session_scope(db_url) as s:
        [row] = s.exec(select(Event)).all()
        assert row.customer_id == seed.customers["C1"] and row.processed_at is None
    with pytest.raises(events_bridge.UnknownCustomer):
        events_bridge.emit("complaint.filed", "NOBODY", {}, event_id="e-2", db_url=db_url)


def test_the_planners_emit_event_is_used_when_present(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    @dataclass
    class Result:
        event_id: str
        created: bool
        touches: list[int]
        tasks: list[int]

    def emit_event(type: str, customer_external_id: str, data: dict[str, Any], event_id: str | None = None,
                   occurred_at: Any = None, url: str | None = None) -> Result:
        calls.append((type, customer_external_id, data, event_id, url))
        return Result(event_id or "x", True, [1, 2], [3])

    module = types.ModuleType("engine.loop.events")
    module.emit_event = emit_event  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "engine.loop.events", module)
    result = events_bridge.emit("task.completed", "C1", {"task_id": 1}, event_id="e-9", db_url=db_url)
    assert calls == [("task.completed", "C1", {"task_id": 1}, "e-9", db_url)]
    assert (result.event_id, result.created, result.touches, result.tasks) == ("e-9", True, 2, 1)
