"""Assignment (dedicated advisor, least-loaded, round-robin) and SLA escalation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from console.assignment import assign_open_tasks, escalate_overdue
from console.tasks import SUPERVISOR_QUEUE
from store.db import session_scope
from store.models import AgentTask, AppUser, Event
from tests.console.conftest import Seed, add_task


def _assignees(url: str, ids: list[int]) -> list[int | None]:
    with session_scope(url) as s:
        return [s.get(AgentTask, i).assignee_id for i in ids]  # type: ignore[union-attr]


def _new_tasks(url: str, seed: Seed, customer: str, n: int, prefix: str, queue: str = "callbacks") -> list[int]:
    with session_scope(url) as s:
        return [add_task(s, f"{prefix}-{i}", seed.customers[customer], now=seed.now,
                         due_in=timedelta(hours=1, minutes=i), queue=queue) for i in range(n)]


def test_diamond_customers_tasks_go_to_their_dedicated_advisor(db_url: str, seed: Seed,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_ASSIGNMENT", "none")  # only the advisor rule applies
    diamond = _new_tasks(db_url, seed, "C2", 2, "dia")
    other = _new_tasks(db_url, seed, "C1", 1, "gold")
    assert assign_open_tasks(db_url=db_url) == 2
    assert _assignees(db_url, diamond) == [seed.users["ann"]] * 2
    assert _assignees(db_url, other) == [None]


def test_least_loaded_balances_on_shift_agents(db_url: str, seed: Seed) -> None:
    # Loads before: ann 2 open, bob 1 claimed, cara 1 open; "free" is unassigned too.
    new = _new_tasks(db_url, seed, "C1", 4, "ll")
    assign_open_tasks(strategy="least_loaded", db_url=db_url)
    with session_scope(db_url) as s:
        loads = {u.username: len(s.exec(select(AgentTask).where(AgentTask.assignee_id == u.id,
                                                                 col(AgentTask.status).in_(("open", "claimed")))
                                        ).all())
                 for u in s.exec(select(AppUser).where(AppUser.role == "agent")).all()}
    assert sorted(loads.values()) == [3, 3, 3] and sum(loads.values()) == 9
    assert None not in _assignees(db_url, new)


def test_off_shift_agents_and_the_cap_are_respected(db_url: str, seed: Seed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_ASSIGNMENT_MAX_PER_AGENT", "3")
    with session_scope(db_url) as s:
        bob = s.get(AppUser, seed.users["bob"])
        assert bob is not None
        bob.on_shift = False
        s.add(bob)
    new = _new_tasks(db_url, seed, "C1", 6, "cap")
    assign_open_tasks(strategy="least_loaded", db_url=db_url)
    got = _assignees(db_url, new)
    assert seed.users["bob"] not in got
    # Most urgent first: "free" goes to cara (load 1), then ann and cara reach the cap of 3; the rest stay claimable.
    assert _assignees(db_url, [seed.tasks["free"]]) == [seed.users["cara"]]
    assert got == [seed.users["ann"], seed.users["cara"], None, None, None, None]


def test_round_robin_takes_turns_and_remembers_where_it_stopped(db_url: str, seed: Seed) -> None:
    first = _new_tasks(db_url, seed, "C1", 3, "rr1")
    assign_open_tasks(strategy="round_robin", db_url=db_url)
    agents = [seed.users["ann"], seed.users["bob"], seed.users["cara"]]
    # "free" (due in 1h) went first, to ann; then bob, cara, ann.
    assert _assignees(db_url, first) == [agents[1], agents[2], agents[0]]
    second = _new_tasks(db_url, seed, "C1", 1, "rr2")
    assign_open_tasks(strategy="round_robin", db_url=db_url)
    assert _assignees(db_url, second) == [agents[1]]


def test_queue_named_after_a_team_goes_to_that_team(db_url: str, seed: Seed) -> None:
    new = _new_tasks(db_url, seed, "C1", 3, "teamb", queue="b")
    assign_open_tasks(strategy="least_loaded", db_url=db_url)
    assert _assignees(db_url, new) == [seed.users["cara"]] * 3


def test_escalation_flags_breached_tasks_once_and_opens_a_supervisor_task(db_url: str, seed: Seed) -> None:
    later = seed.now + timedelta(hours=2, minutes=30)  # "free" (1h) and ann_first (2h) are overdue
    assert escalate_overdue(later, db_url=db_url) == 2
    assert escalate_overdue(later, db_url=db_url) == 0  # idempotent
    with session_scope(db_url) as s:
        flagged = s.exec(select(AgentTask).where(AgentTask.escalated == True)).all()  # noqa: E712
        assert {t.id for t in flagged} == {seed.tasks["free"], seed.tasks["ann_first"]}
        sup_tasks = s.exec(select(AgentTask).where(AgentTask.queue == SUPERVISOR_QUEUE)).all()
        assert {t.parent_task_id for t in sup_tasks} == {seed.tasks["free"], seed.tasks["ann_first"]}
        by_parent = {t.parent_task_id: t for t in sup_tasks}
        # ann is in team a, so sue (team a's supervisor) gets it; the unassigned one has no team,
        # and with no supervisor without a team it waits in the supervisor queue.
        assert by_parent[seed.tasks["ann_first"]].assignee_id == seed.users["sue"]
        assert by_parent[seed.tasks["free"]].assignee_id is None
        assert all(t.priority == 1 and t.status == "open" for t in sup_tasks)
        events = s.exec(select(Event).where(Event.type == "task.escalated")).all()
        assert sorted(e.data["task_id"] for e in events) == sorted([seed.tasks["free"], seed.tasks["ann_first"]])
    even_later = later + timedelta(hours=1)  # bob's and cara's (3h) now breach; the others stay escalated once
    assert escalate_overdue(even_later, db_url=db_url) == 2
    # Supervisor tasks are never escalated themselves.
    assert escalate_overdue(even_later + timedelta(days=1), db_url=db_url) == 1  # only ann_second (5h)
