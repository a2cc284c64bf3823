"""Business-hours SLA clocks, warnings before a breach, and escalation after it.

Before, every SLA ran on wall time: a negative survey answered at 22:00 was due at 04:00 and
escalated overnight, and nobody was warned before a breach. Dates below are checked against the
PRC calendar (2025: National Day off 1-8 October, Saturday 11 October worked in exchange).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from console import queues, sla, tasks
from console.assignment import escalate_overdue, run_desk
from console.supervision import backlog
from engine.language.settings_model import BusinessHours
from engine.language.work_calendar import WorkCalendar
from store.db import session_scope
from store.models import AgentTask, Event
from tests.console.conftest import Seed, seed_console, user
from tests.db_support import inserted, stored

SH = ZoneInfo("Asia/Shanghai")
CLOCK = sla.Clock(BusinessHours(timezone="Asia/Shanghai", start="09:00", end="18:00"), WorkCalendar())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SH)


@pytest.mark.parametrize(("start", "window", "due"), [
    ("2025-11-18 22:00", timedelta(hours=6), "2025-11-19 15:00"),  # after hours: starts at 09:00 next day
    ("2025-11-18 17:30", timedelta(hours=2), "2025-11-19 10:30"),  # half an hour today, the rest tomorrow
    ("2025-11-18 07:00", timedelta(hours=2), "2025-11-18 11:00"),  # before opening: from 09:00
    ("2025-11-21 15:00", timedelta(days=1), "2025-11-24 15:00"),  # Friday + 1 working day = Monday
    ("2025-11-18 10:00", timedelta(days=7), "2025-11-27 10:00"),  # 7 working days, a weekend between
    ("2025-09-30 17:00", timedelta(hours=6), "2025-10-09 14:00"),  # National Day: 1 h, then 9 October
    ("2025-10-10 17:00", timedelta(hours=6), "2025-10-11 14:00"),  # Saturday 11 October is a working day
    ("2025-11-22 11:00", timedelta(hours=2), "2025-11-24 11:00"),  # Saturday: from Monday 09:00
])
def test_business_clock_counts_open_hours_and_working_days(start: str, window: timedelta, due: str) -> None:
    assert CLOCK.deadline(at(start), window) == at(due)


def test_sla_times_warn_at_a_share_of_the_open_time() -> None:
    business = queues.Queue("service_recovery", ("x",), ("reached",), "business", 0.8, frozenset(), False, True)
    due, warn = sla.sla_times(business, at("2025-11-18 22:00"), timedelta(hours=6), CLOCK)
    assert (due, warn) == (at("2025-11-19 15:00"), at("2025-11-19 13:48"))
    wall = queues.Queue("complaints", ("x",), ("reached",), "wall", 0.5, frozenset(), False, True)
    due, warn = sla.sla_times(wall, at("2025-11-18 22:00"), timedelta(hours=24), CLOCK)
    assert (due, warn) == (at("2025-11-19 22:00"), at("2025-11-19 10:00"))


def _planner_task(url: str, seed: Seed, key: str, *, queue: str, journey: str, step: str, start: datetime,
                  window: timedelta) -> int:
    """A task written without its SLA times (as the planner did before it used the queue's clock):
    due = start + due_within on the wall clock, no warning time; the desk round settles it."""
    return inserted(url, AgentTask(key=key, customer_id=seed.customers["C1"], journey_id=journey,
                                   journey_version="v-test", step_id=step, occurrence="event-0", queue=queue,
                                   script=None, status="open", due_at=start + window, created_at=start,
                                   assignee_id=seed.users["ann"]))


def test_a_negative_survey_at_22_00_is_due_the_next_afternoon_and_not_escalated_overnight(db_url: str,
                                                                                          seed: Seed) -> None:
    survey = _planner_task(db_url, seed, "nps", queue="service_recovery", journey="negative-survey-callback",
                           step="callback", start=at("2025-11-18 22:00"), window=timedelta(hours=6))
    complaint = _planner_task(db_url, seed, "cmp", queue="complaints", journey="complaint-response",
                              step="handle", start=at("2025-11-18 22:00"), window=timedelta(hours=24))
    # 05:00: the wall clock would have breached the survey's 6 hours an hour ago.
    assert escalate_overdue(at("2025-11-19 05:00"), db_url=db_url) == 0
    nps, cmp = stored(db_url, AgentTask, survey), stored(db_url, AgentTask, complaint)
    assert nps.due_at == at("2025-11-19 15:00") and nps.warn_at == at("2025-11-19 13:48")
    assert cmp.due_at == at("2025-11-19 22:00") and cmp.warn_at == at("2025-11-19 17:12")  # 24 h, wall time
    assert not nps.escalated
    assert escalate_overdue(at("2025-11-19 15:01"), db_url=db_url) == 1
    assert stored(db_url, AgentTask, survey).escalated and not stored(db_url, AgentTask, complaint).escalated


def test_settling_is_done_once(db_url: str, seed: Seed) -> None:
    task_id = _planner_task(db_url, seed, "nps", queue="service_recovery", journey="negative-survey-callback",
                            step="callback", start=at("2025-11-18 22:00"), window=timedelta(hours=6))
    assert sla.settle_new_tasks(db_url=db_url) >= 1
    first = stored(db_url, AgentTask, task_id)
    assert sla.settle_new_tasks(db_url=db_url) == 0
    assert stored(db_url, AgentTask, task_id).due_at == first.due_at


def test_the_assignee_and_the_supervisor_are_warned_once_before_the_breach(db_url: str, seed: Seed) -> None:
    task_id = _planner_task(db_url, seed, "nps", queue="service_recovery", journey="negative-survey-callback",
                            step="callback", start=at("2025-11-19 09:00"), window=timedelta(hours=6))
    before = run_desk(at("2025-11-19 13:00"), db_url=db_url)
    assert before["warned"] == 0
    assert run_desk(at("2025-11-19 14:00"), db_url=db_url)["warned"] == 1  # past 13:48, before 15:00
    assert run_desk(at("2025-11-19 14:30"), db_url=db_url)["warned"] == 0  # once
    with session_scope(db_url) as s:
        [event] = s.exec(select(Event).where(Event.type == "task.sla_warning")).all()
        assert event.data["task_id"] == task_id and event.data["assignee_id"] == seed.users["ann"]
    ann, sue = user(db_url, "ann"), user(db_url, "sue")
    box = tasks.inbox(ann, now=at("2025-11-19 14:30"), db_url=db_url)
    assert box.mine_at_risk == 1 and [r.id for r in box.mine if r.at_risk] == [task_id]
    queue = {b.queue: b for b in backlog(sue, now=at("2025-11-19 14:30"), db_url=db_url)}["service_recovery"]
    assert queue.at_risk == 1 and queue.overdue == 0
    assert run_desk(at("2025-11-19 15:01"), db_url=db_url)["escalated"] == 1  # and escalated after the breach


def test_a_retry_after_a_late_no_answer_is_due_on_the_queues_clock(db_url: str, seed: Seed) -> None:
    task_id = _planner_task(db_url, seed, "nps", queue="service_recovery", journey="negative-survey-callback",
                            step="callback", start=at("2025-11-19 13:00"), window=timedelta(hours=6))
    ann = user(db_url, "ann")
    done = tasks.complete(ann, task_id, "no_answer", now=at("2025-11-19 17:00"), db_url=db_url)
    retry = stored(db_url, AgentTask, done.follow_up_task_id or 0)
    # Four hours of open time: one today, three tomorrow morning (not 21:00 tonight).
    assert retry.due_at == at("2025-11-20 12:00") and retry.warn_at is not None


def test_the_warning_share_is_a_setting(db_url: str, seed: Seed, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "queues.yaml").write_text(
        "queues:\n  complaints:\n    clock: wall\n    warn_at: 0.5\n", encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    task_id = _planner_task(db_url, seed, "cmp", queue="complaints", journey="complaint-response", step="handle",
                            start=at("2025-11-18 22:00"), window=timedelta(hours=24))
    sla.settle_new_tasks(db_url=db_url)
    assert stored(db_url, AgentTask, task_id).warn_at == at("2025-11-19 10:00")


def test_the_desk_round_settles_warns_and_escalates_in_batches_on_both_databases(migrated_any_db: str) -> None:
    url = migrated_any_db
    seed = seed_console(url)
    surveys = [_planner_task(url, seed, f"nps-{i}", queue="service_recovery", journey="negative-survey-callback",
                             step="callback", start=at("2025-11-18 22:00") + timedelta(minutes=i),
                             window=timedelta(hours=6)) for i in range(3)]
    assert run_desk(at("2025-11-19 05:00"), db_url=url)["escalated"] == 0
    assert [stored(url, AgentTask, t).due_at for t in surveys] == [at("2025-11-19 15:00")] * 3  # all from 09:00
    assert run_desk(at("2025-11-19 14:00"), db_url=url)["warned"] == 3
    assert run_desk(at("2025-11-19 14:10"), db_url=url)["warned"] == 0
    with session_scope(url) as s:
        events = s.exec(select(Event).where(Event.type == "task.sla_warning")).all()
        assert sorted(e.data["task_id"] for e in events) == sorted(surveys)
    assert run_desk(at("2025-11-19 15:01"), db_url=url)["escalated"] >= 3
