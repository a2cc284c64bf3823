"""The desk's SLA round runs by itself in a running console: no one calls ``run_desk`` by hand.

Before, ``console.assignment.run_desk`` (SLA times of new tasks, assignment, warnings before a
breach, escalation after it) ran only in the demo and in tests: a console in production never
warned or escalated anything.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from console.app import create_app
from console.config import ConsoleSettings
from console.events_bridge import emit
from store.db import session_scope
from store.models import AgentTask, Event
from tests.console.conftest import FakeClock, Seed
from tests.uvicorn_support import uvicorn_thread

SH = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SH)


def wait_for(what: str, check: Callable[[], bool], within: float = 60.0) -> None:
    """Wait until the server's own timer has done ``what`` (polling the database), or fail."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"the running console did not {what} within {within:g} s")
        time.sleep(0.05)


def survey_task(url: str) -> AgentTask:
    with session_scope(url) as s:
        task = s.exec(select(AgentTask).where(AgentTask.queue == "service_recovery")).one()
        s.expunge(task)
        return task


def events_of(url: str, type_: str) -> list[Event]:
    with session_scope(url) as s:
        return list(s.exec(select(Event).where(Event.type == type_)).all())


def test_a_running_console_warns_and_escalates_on_its_own(db_url: str, console_env: None, seed: Seed,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_DESK_EVERY", "60")
    settings = dataclasses.replace(ConsoleSettings.from_env(db_url), desk_every=0.1)
    clock = FakeClock()
    clock.now = at("2025-11-18 22:00")
    app = create_app(db_url, settings=settings, clock=clock)
    # A negative survey at 22:00, through the real planner: the queue runs on business hours, so
    # the task is due after six open hours from 09:00 the next working day, from the moment it is
    # written (not 04:00 until a desk round corrects it).
    emit("survey.answered", "C3", {"survey": "nps", "nps": 3, "comment": "等太久了"}, event_id="nps-late",
         occurred_at=clock.now, db_url=db_url)
    task = survey_task(db_url)
    assert task.due_at == at("2025-11-19 15:00") and task.warn_at == at("2025-11-19 13:48")
    with uvicorn_thread(app, lifespan="on"):
        clock.now = at("2025-11-19 05:00")  # past the wall-clock breach: nothing happens at night
        rounds = app.state.desk_timer.rounds
        wait_for("run two more rounds", lambda: app.state.desk_timer.rounds >= rounds + 2)
        assert not survey_task(db_url).escalated and not events_of(db_url, "task.sla_warning")

        clock.now = at("2025-11-19 14:00")  # past 80% of the open time
        # The warning is recorded on the task, then sent as an event once that is committed.
        wait_for("warn before the breach", lambda: bool(events_of(db_url, "task.sla_warning")))
        assert survey_task(db_url).warned_at is not None
        [warning] = events_of(db_url, "task.sla_warning")
        assert warning.data["task_id"] == task.id

        clock.now = at("2025-11-19 15:01")  # breached
        wait_for("escalate after the breach", lambda: survey_task(db_url).escalated)
        with session_scope(db_url) as s:
            [escalation] = s.exec(select(AgentTask).where(col(AgentTask.parent_task_id) == task.id,
                                                          AgentTask.queue == "supervisor")).all()
            assert escalation.key == f"escalation:{task.id}"
        timer = app.state.desk_timer
    # Stopped with the server: no round runs on a console that has shut down.
    assert timer is not None and not timer.running


def test_the_round_is_a_setting_and_can_be_off(db_url: str, console_env: None, seed: Seed,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_DESK_EVERY", "90")
    assert ConsoleSettings.from_env(db_url).desk_every == 90
    monkeypatch.setenv("JOURNEYS_DESK_EVERY", "0")
    app = create_app(db_url)
    with uvicorn_thread(app, lifespan="on"):
        assert app.state.desk_timer is None
    with session_scope(db_url) as s:
        # Nothing settled or assigned: the free task is still nobody's and has no warning time.
        free = s.get(AgentTask, seed.tasks["free"])
        assert free is not None and free.assignee_id is None and free.warn_at is None
