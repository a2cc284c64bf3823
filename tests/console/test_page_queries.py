"""A console page sends as many statements for a big branch as for a small one.

A page that asks the database once per row it shows (per user, per task, per team member) grows
with the branch: at 80 revealing agents the audit page sent 85 statements. Each test opens a page
over a few rows, adds more of them, opens it again and compares the statements sent (behaviour,
not timing).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.testclient import TestClient

from store.clock import utcnow
from store.db import session_scope
from store.models import AuditLog
from tests.console.conftest import Seed, add_user, login


def sent_by(client: TestClient, path: str, statements: list[tuple[str, Any]]) -> int:
    statements.clear()
    response = client.get(path)
    assert response.status_code == 200, path
    return len(statements)


def add_bursts(db_url: str, actors: list[str]) -> None:
    """Twelve reveals within ten minutes by each actor: a burst at the default policy (10 in 10 minutes)."""
    now = utcnow()
    with session_scope(db_url) as s:
        for actor in actors:
            for i in range(12):
                s.add(AuditLog(actor=actor, action="reveal", target_type="task", target_id=str(i), detail={},
                               at=now - timedelta(minutes=30) + timedelta(seconds=40 * i)))


def test_the_audit_page_and_the_desk_ask_once_for_every_users_reveal_bursts(
        client: TestClient, db_url: str, seed: Seed, statements: list[tuple[str, Any]]) -> None:
    add_bursts(db_url, ["ann", "bob"])
    admin = TestClient(client.app, base_url="http://testserver")
    login(admin, "adam")
    login(client, "sue")
    audit_few, desk_few = sent_by(admin, "/admin/audit", statements), sent_by(client, "/supervisor", statements)
    more = [f"agent{i}" for i in range(8)]
    for name in more:
        add_user(db_url, name, "a")
    add_bursts(db_url, more)
    page = admin.get("/admin/audit").text
    bursts = page.split('data-testid="bursts"')[1].split("</table>")[0]
    assert all(f'data-actor="{name}"' in bursts for name in ["ann", "bob", *more])
    assert 'data-actor="agent0"' in client.get("/supervisor").text
    assert sent_by(admin, "/admin/audit", statements) == audit_few
    assert sent_by(client, "/supervisor", statements) == desk_few
