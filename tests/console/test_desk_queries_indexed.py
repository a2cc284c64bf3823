"""The supervisor's desk and the audit page read what is open now and the period's rows, by index.

``agent_task`` and ``audit_log`` keep every task closed and every reveal since the service began. The
desk's backlog per queue, its agents' tasks closed this week and the reveal bursts both pages show are
EXPLAINed as SQLite runs them from the statements the pages really send: none may read either table whole,
and each must take the index migration 0018 made for it (on the book of a branch, the backlog scanned
80,000 tasks for 20,000 open and the bursts grouped 50,000 audit rows by actor).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from starlette.testclient import TestClient

from store.clock import utcnow
from store.db import session_scope
from store.models import AuditLog
from tests.console.conftest import Seed, add_task, login


def history(db_url: str, seed: Seed) -> None:
    """Closed tasks of the last weeks and an audit log of reveals and logins, as a desk that has run a while."""
    now = seed.now
    with session_scope(db_url) as s:
        for i in range(60):
            add_task(s, f"old-{i}", seed.customers["C1"], now=now - timedelta(days=i % 30), due_in=timedelta(hours=4),
                     assignee_id=seed.users["ann" if i % 2 else "bob"], status="done")
        for i in range(120):
            s.add(AuditLog(actor="ann" if i % 3 else "bob", action="reveal" if i % 2 else "login", target_type="task",
                           target_id=str(i), detail={}, at=utcnow() - timedelta(minutes=7 * i)))


def plans(db_url: str, sent: list[tuple[str, Any]], table: str) -> dict[str, str]:
    """Each SELECT on ``table`` (a query of common table expressions too) with its plan, one line per step."""
    out = {}
    with session_scope(db_url) as session:
        for statement, parameters in sent:
            if statement.lstrip().upper().startswith(("SELECT", "WITH")) and f"FROM {table}" in statement:
                rows = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
                out[statement] = " | ".join(str(r[-1]) for r in rows)
    return out


def opened_after_history(client: TestClient, db_url: str, seed: Seed, statements: list[tuple[str, Any]],
                         username: str, path: str) -> None:
    """``username`` opens ``path`` over the desk's history, with the statistics ANALYZE gathers (the planner's
    choices depend on them); ``statements`` then holds what that page sent, and only that."""
    history(db_url, seed)
    with session_scope(db_url) as s:
        s.connection().exec_driver_sql("ANALYZE")
    login(client, username)
    statements.clear()
    assert client.get(path).status_code == 200


def test_the_desk_reads_open_tasks_and_this_weeks_closed_ones_by_index(
        client: TestClient, db_url: str, seed: Seed, statements: list[tuple[str, Any]]) -> None:
    opened_after_history(client, db_url, seed, statements, "sue", "/supervisor")
    found = plans(db_url, statements, "agent_task")
    backlog = [p for s, p in found.items() if "GROUP BY agent_task.queue" in s]
    closed = [p for s, p in found.items()
              if "agent_task.completed_at >=" in s and "GROUP BY agent_task.assignee_id" in s]
    assert len(backlog) == 1 and "USING COVERING INDEX ix_task_active_queue" in backlog[0], backlog
    assert len(closed) == 1 and "ix_task_assignee_status_completed (assignee_id=? AND status=? AND completed_at>?)" \
        in closed[0], closed
    # A scan of the active tasks' own index reads only the open work; any other scan reads the history.
    other_scans = re.compile(r"SCAN agent_task(?! USING COVERING INDEX ix_task_active_queue)")
    assert [p for p in found.values() if other_scans.search(p)] == []


def test_reveal_bursts_read_the_periods_reveals_by_index(
        client: TestClient, db_url: str, seed: Seed, statements: list[tuple[str, Any]]) -> None:
    opened_after_history(client, db_url, seed, statements, "adam", "/admin/audit")
    bursts = [p for s, p in plans(db_url, statements, "audit_log").items()
              if "audit_log.action IN" in s and "audit_log.at >" in s]
    assert len(bursts) == 1
    assert "SCAN audit_log" not in bursts[0], bursts
    assert "USING COVERING INDEX ix_audit_log_action_at (action=? AND at>?)" in bursts[0], bursts
