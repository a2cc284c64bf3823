"""Every console page at a branch's size: server time and statements per page, as its user opens it.

    .venv/bin/python benchmarks/console_pages_bench.py [--db URL] [--size 200000] [--touches 1000000]
        [--tasks 20000] [--events 100000] [--requests 5] [--keep]

Builds the book in a fresh database (a temporary SQLite file unless ``--db`` names an empty one;
with ``--keep`` and ``--db`` a book already built there is reused): ``--size`` customers
(``seed_book``), ``--touches`` touches and as many enrollments over the last 90 days, ``--tasks``
open tasks over the shipped queues plus three times as many closed ones, ``--events`` events, an
audit row for every 20 touches, 80 agents of every team with long Chinese names, all bulk-inserted.
Then, through the ASGI app (``httpx.ASGITransport``: middleware, routing, queries, Jinja), each page
as its user opens it: the inbox and its filters, a task, the supervisor's desk, a customer's
explanation, the journeys list and a journey, the report, the review pages, the admin's users and
audit. Per page: median server time of ``--requests`` requests and the statements it sent (counted
by a SQLAlchemy hook, here and never in the timed tests). Bar: every page's median <= 1,000 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Report, add_common, add_database_option, bench_database, console_client

BAR_MS = 1000.0
PASSWORD = "bench-password-1"
CHUNK = 20_000
# Open tasks per queue, in shares (a real desk: mostly gold callbacks).
QUEUE_MIX = {"gold_callback": 40, "platinum_callback": 10, "retention": 10, "renewal": 10, "complaints": 8,
             "service_recovery": 7, "claims_fast_track": 5, "diamond_advisor": 5, "policy_review": 3,
             "health_booking": 2}
TEAMS = ["gold_callback", "platinum_callback", "retention", "renewal", "complaints", "service_recovery", "claims",
         "advisors", "policy_review", "health_booking"]
# Long Chinese display names, as a branch's staff lists spell them (with the branch and the role).
LONG_NAME = "上海分公司客户服务中心高级坐席专员欧阳慕容{}号"
EVENT_TYPES = ["app.login", "survey.answered", "complaint.filed", "claim.filed", "policy.renewed"]


def _insert(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    from sqlalchemy import insert

    for k in range(0, len(rows), CHUNK):
        conn.execute(insert(table.__table__), rows[k:k + CHUNK])


def build(url: str, customers: int, touches: int, open_tasks: int, events: int) -> None:
    from sqlalchemy import text

    from console.auth import hash_password
    from engine.demo.seeding import seed_book
    from engine.language.journey_registry import validated_report
    from store.clock import utcnow
    from store.db import get_engine
    from store.migrate import upgrade
    from store.models import AgentTask, AppUser, AuditLog, Enrollment, Event, Outcome, Touch

    upgrade(url)
    started = time.perf_counter()
    seed_book(url, customers)
    print(f"customers: {time.perf_counter() - started:.0f} s")
    engine = get_engine(url)
    now = utcnow()
    rng = random.Random(11)
    pw = hash_password(PASSWORD)
    journeys = [j.journey for j in validated_report().journeys]
    with engine.begin() as conn:
        users = [{"username": u, "display_name": LONG_NAME.format(u), "role": role, "password_hash": pw,
                  "locale": "zh-CN", "team": team, "skills": [], "on_shift": True, "active": True, "failed_logins": 0,
                  "created_at": now}
                 for u, role, team in [("agent0", "agent", "gold_callback"), ("sup0", "supervisor", "gold_callback"),
                                       ("ops0", "ops", None), ("admin0", "admin", None)]]
        users += [{**users[0], "username": f"agent{i}", "display_name": LONG_NAME.format(i),
                   "team": TEAMS[i % len(TEAMS)]} for i in range(1, 80)]
        _insert(conn, AppUser, users)
        user_ids = [r[0] for r in conn.execute(text("SELECT id FROM app_user WHERE role = 'agent' ORDER BY id"))]
        ids = [r[0] for r in conn.execute(text("SELECT id FROM customer ORDER BY id"))]
        started = time.perf_counter()
        for start in range(0, touches, CHUNK):
            enrollments, rows = [], []
            for i in range(start, min(start + CHUNK, touches)):
                j = journeys[i % len(journeys)]
                step = j.steps[i % len(j.steps)]
                at = now - timedelta(minutes=rng.randint(0, 90 * 24 * 60))
                customer = ids[i % len(ids)]
                exited = i % 7 != 0
                enrollments.append({"customer_id": customer, "journey_id": j.id, "journey_version": "v1",
                                    "occurrence": f"b{i}", "step_id": step.id,
                                    "state": "exited" if exited else "waiting", "entered_at": at,
                                    "exited_at": at if exited else None, "exit_reason": "sent" if exited else None})
                status = rng.choice(["delivered", "delivered", "delivered", "sent", "failed", "cancelled"])
                rows.append({"key": f"b:{i}", "customer_id": customer, "journey_id": j.id, "journey_version": "v1",
                             "step_id": step.id, "occurrence": f"b{i}", "category": j.category, "urgent": False,
                             "channel": ("sms", "wechat", "email")[i % 3], "fallback_channels": [], "template": "t",
                             "planned_for": at, "due_at": at, "created_at": at, "attempts": 1, "status": status,
                             "sent_at": at, "delivered_at": at if status == "delivered" else None,
                             "error_reason": "invalid address" if status == "failed" else None})
            _insert(conn, Enrollment, enrollments)
            _insert(conn, Touch, rows)
        print(f"touches and enrollments: {time.perf_counter() - started:.0f} s")
        event_rows = [{"external_id": f"bev{i}", "type": EVENT_TYPES[i % len(EVENT_TYPES)],
                       "customer_id": ids[i % len(ids)],
                       "data": {}, "occurred_at": (at := now - timedelta(minutes=rng.randint(0, 90 * 24 * 60))),
                       "received_at": at, "processed_at": at} for i in range(events)]
        _insert(conn, Event, event_rows)
        queues, weights = list(QUEUE_MIX), list(QUEUE_MIX.values())
        tasks, outcomes = [], []
        for i in range(open_tasks * 4):
            closed = i >= open_tasks
            assigned = closed or i % 2 == 0
            due = now + timedelta(minutes=rng.randint(-2 * 24 * 60, 5 * 24 * 60))
            created = now - timedelta(minutes=rng.randint(60, 90 * 24 * 60)) if closed else now - timedelta(days=1)
            tasks.append({"key": f"b:{i}", "customer_id": ids[(i * 7) % len(ids)],
                          "journey_id": "gold-monthly-callback", "journey_version": "v1", "step_id": "call",
                          "occurrence": f"t{i}", "queue": rng.choices(queues, weights)[0], "priority": 1 + i % 3,
                          "script": "gold_monthly_callback",
                          "assignee_id": user_ids[i % len(user_ids)] if assigned else None,
                          "status": "done" if closed else ("claimed" if assigned and i % 10 == 0 else "open"),
                          "due_at": created + timedelta(days=1) if closed else due,
                          "warn_at": (created if closed else due) - timedelta(hours=2), "created_at": created,
                          "completed_at": created + timedelta(hours=rng.randint(1, 40)) if closed else None,
                          "outcome_code": "reached" if closed else None, "attempt": 1, "escalated": False})
        _insert(conn, AgentTask, tasks)
        task_ids = [r[0] for r in conn.execute(text("SELECT id FROM agent_task WHERE status = 'done'"))]
        outcomes = [{"task_id": t, "customer_id": ids[0], "kind": "task:reached", "detail": {},
                     "occurred_at": now - timedelta(minutes=rng.randint(0, 90 * 24 * 60))} for t in task_ids]
        _insert(conn, Outcome, outcomes)
        audit = [{"actor": f"agent{i % 80}", "action": "reveal" if i % 3 else "login", "target_type": "task",
                  "target_id": str(i), "detail": {}, "at": now - timedelta(minutes=rng.randint(0, 90 * 24 * 60))}
                 for i in range(touches // 20)]
        _insert(conn, AuditLog, audit)
        conn.execute(text("ANALYZE"))
    print(f"built: {customers} customers, {touches} touches and enrollments, {open_tasks} open tasks "
          f"(+{3 * open_tasks} closed), {events} events")


def pages(customer: str, task_id: int, journey_id: str, today: date) -> list[tuple[str, str, str]]:
    """(name, user, path) of each page as its user opens it."""
    month = f"start={today - timedelta(days=30)}&end={today}"
    return [
        ("inbox", "agent0", "/inbox"),
        ("inbox_queue", "agent0", "/inbox?queue=gold_callback"),
        ("inbox_overdue", "agent0", "/inbox?overdue=1&tier=gold"),
        ("inbox_customer", "agent0", f"/inbox?customer={customer}"),
        ("inbox_page_5", "agent0", "/inbox?page=4"),
        ("task", "agent0", f"/tasks/{task_id}"),
        ("task_supervisor", "sup0", f"/tasks/{task_id}"),
        ("supervisor", "sup0", "/supervisor"),
        ("supervisor_overdue", "sup0", "/supervisor?state=overdue"),
        ("supervisor_page_5", "sup0", "/supervisor?page=4"),
        ("explain", "ops0", f"/ops/explain?customer={customer}"),
        ("journeys", "ops0", "/ops/journeys"),
        ("journey", "ops0", f"/ops/journeys/{journey_id}"),
        ("report", "ops0", f"/ops/report?{month}"),
        ("report_by_tier", "ops0", f"/ops/report?{month}&by=tier"),
        ("simulate_day", "ops0", f"/ops/simulate?start={today}&end={today}"),
        ("review", "ops0", "/ops/review"),
        ("test_send", "ops0", "/ops/test-send"),
        ("admin_users", "admin0", "/admin/users"),
        ("admin_audit", "admin0", "/admin/audit?kind=all&hours=168"),
    ]


async def _client(app: Any, username: str) -> Any:
    return await console_client(app, username, PASSWORD)


async def measure(url: str, n_requests: int, only: list[str]) -> dict[str, tuple[float, int, int]]:
    """Per page: (median ms, statements per request, status)."""
    from sqlalchemy import event, text
    from sqlalchemy.engine import Engine

    from console.app import create_app
    from store.clock import utcnow
    from store.db import get_engine

    engine = get_engine(url)
    with engine.connect() as conn:
        customer = conn.execute(text("SELECT external_id FROM customer ORDER BY id LIMIT 1 OFFSET 77")).scalar_one()
        task_id = conn.execute(text("SELECT min(t.id) FROM agent_task t JOIN app_user u ON u.id = t.assignee_id "
                                    "WHERE t.status IN ('open', 'claimed') AND u.username = 'agent0'")).scalar_one()
        today = utcnow().date()
    sent: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    app = create_app(url)
    plan = [p for p in pages(customer, task_id, "gold-monthly-callback", today) if not only or p[0] in only]
    clients = {u: await _client(app, u) for u in {u for _, u, _ in plan}}
    figures: dict[str, tuple[float, int, int]] = {}
    # Every engine: the planner's tools (explain, simulate, the report) open their own.
    event.listen(Engine, "before_cursor_execute", count)
    try:
        for name, username, path in plan:
            await clients[username].get(path)  # templates compiled, caches warm
            times, status = [], 0
            sent.clear()
            for _ in range(n_requests):
                start = time.perf_counter()
                response = await clients[username].get(path)
                times.append((time.perf_counter() - start) * 1000)
                status = response.status_code
            figures[name] = (statistics.median(times), len(sent) // n_requests, status)
            print(f"{name:20} {figures[name][0]:9.1f} ms {figures[name][1]:5d} queries  HTTP {status}  {path}",
                  flush=True)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
        for client in clients.values():
            await client.aclose()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_option(parser)
    parser.add_argument("--size", "--customers", dest="customers", type=int, default=200_000)
    parser.add_argument("--touches", type=int, default=1_000_000, help="touches (and enrollments) over 90 days")
    parser.add_argument("--tasks", type=int, default=20_000, help="open tasks (three times as many closed)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5, help="timed requests per page")
    parser.add_argument("--keep", action="store_true", help="reuse the book already built in --db")
    parser.add_argument("--pages", nargs="*", default=[], help="only these pages (names as printed)")
    add_common(parser)
    args = parser.parse_args()
    os.environ.setdefault("JOURNEYS_SECRET_KEY", "benchmark-only-key")
    os.environ.setdefault("JOURNEYS_DESK_EVERY", "0")
    with bench_database(args.db) as url:
        from sqlalchemy import inspect, text

        from store.db import get_engine

        engine = get_engine(url)
        built = False
        if args.keep and inspect(engine).has_table("app_user"):
            with engine.connect() as conn:
                built = bool(conn.execute(text("SELECT count(*) FROM app_user WHERE username = 'ops0'")).scalar())
        if built:
            from store.migrate import upgrade

            upgrade(url)
        else:
            started = time.perf_counter()
            build(url, args.customers, args.touches, args.tasks, args.events)
            print(f"build: {time.perf_counter() - started:.0f} s")
        figures = asyncio.run(measure(url, args.requests, args.pages))
    report = Report("console_pages", args.customers, "customers")
    report.meta["backend"] = "sqlite" if url.startswith("sqlite") else "postgresql"
    for name, (ms, queries, status) in figures.items():
        report.add(f"{name}_ms", f"{name} median (x{args.requests}, HTTP {status})", ms, "ms",
                   bar=f"<= {BAR_MS:.0f}", met=ms <= BAR_MS and status == 200)
        report.add(f"{name}_queries", f"{name} statements per request", queries, "")
    return report.finish(args)


if __name__ == "__main__":
    sys.exit(main())
