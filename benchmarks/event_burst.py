"""A burst of concurrent events through the REST API, served by a real uvicorn server.

    .venv/bin/python benchmarks/event_burst.py [--size 10000] [--events 1000] [--postgres URL] [--workers N]

Seeds a book of ``--size`` customers (``engine.demo.seeding``) into a fresh database (a temporary
SQLite file, or with ``--postgres URL`` a throw-away database on that server), starts the console
in its own process under uvicorn on 127.0.0.1 (``--workers N`` uvicorn worker processes; PostgreSQL
only, where several console processes may serve the API side by side), warms it up with a few
events sent one by one, and then fires ``--events`` requests at ``POST /api/events`` at the same
moment from an aiohttp client (no connection cap: every request is in flight at once). A share of
them (``--duplicates``, default 5%) repeat the event id of another request of the same burst, as a
sender retrying on a timeout does; those must be answered as repeats, never acted on twice.

The mix is ``event_latency.py``'s: survey answers with NPS 0–6, complaints, small claims (each
creating an agent task, for distinct customers) and app logins (a marketing touch at most).

Figures: wall time from the first request leaving to the last answer arriving (held to the bar:
the whole burst answered within 5 s), answered events per second, p50/p99/max per request, the
CPU the console's processes spent on the burst per request (from /proc; on a shared machine the
load stretches the wall time, not this) and the client's own CPU, then what the store holds
afterwards: distinct events stored and processed, touches and tasks the
burst's events created (read back through their occurrence ``event-<id>``) against the counts
the answers reported, and duplicates: event ids answered as new more than once, or acted on
more than the answers say (both must be 0).

``--profile FILE`` runs the (single-worker) server under ``py-spy record`` (see ``event_latency.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.event_latency import API_KEY, Server, _free_port, percentile, plan_events, prepare  # noqa: E402
from benchmarks.harness import Report, add_common  # noqa: E402

BAR_WALL_S = 5.0
BAR_EVENTS = 1000  # the bar is for a burst of this size; smaller bursts are held to it pro rata


class BurstServer(Server):
    """``event_latency.py``'s server, with ``--workers`` uvicorn worker processes."""

    def __init__(self, url: str, profile: str | None, workers: int) -> None:
        if workers == 1:
            super().__init__(url, profile)
            return
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, JOURNEYS_DATABASE_URL=url, JOURNEYS_API_KEYS=API_KEY,
                   JOURNEYS_SECRET_KEY="benchmark-only-session-key")
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "console.app:create_app", "--host", "127.0.0.1",
               "--port", str(self.port), "--log-level", "warning", "--no-access-log", "--workers", str(workers)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env)


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) of process ``pid`` and its descendants so far, from /proc (Linux
    only; None elsewhere). Load on a shared machine stretches wall time, not CPU per event."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    if pid not in cpu:
        return None
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(cpu[p] for p in tree)


@dataclass
class Answer:
    event_id: str
    type: str
    latency_s: float | None = None
    status: int | None = None
    created: bool = False
    touches: int = 0
    tasks: int = 0
    error: str | None = None


def burst_bodies(customers: list[str], events: int, duplicates: int, seed: int) -> list[dict[str, Any]]:
    """``events`` request bodies: ``events - duplicates`` distinct events, then repeats of some of them,
    shuffled together so a repeat may leave before, with or after its original."""
    import random

    distinct = events - duplicates
    bodies = [{"event_id": f"burst-{i}", "type": kind, "customer_id": customer, "data": data}
              for i, (kind, customer, data) in enumerate(plan_events(customers, distinct, seed))]
    rng = random.Random(seed + 1)
    repeats = [dict(b) for b in rng.sample(bodies, min(duplicates, len(bodies)))]
    out = bodies + repeats
    rng.shuffle(out)
    return out


@dataclass
class Burst:
    answers: list[Answer]
    wall_s: float
    server_cpu_s: float | None  # the console's processes during the burst
    client_cpu_s: float  # this process (the aiohttp client) during the burst


async def fire(base: str, bodies: list[dict[str, Any]], warmup: list[dict[str, Any]], server_pid: int) -> Burst:
    import aiohttp

    url = f"{base}/api/events"
    headers = {"X-API-Key": API_KEY}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def send(body: dict[str, Any], answer: Answer, start: asyncio.Event | None) -> None:
            if start is not None:
                await start.wait()
            began = time.perf_counter()
            try:
                async with session.post(url, json=body, headers=headers) as resp:
                    raw = await resp.read()
                    try:
                        payload = json.loads(raw)
                    except ValueError:
                        payload = raw.decode("utf-8", "replace")
                    answer.latency_s = time.perf_counter() - began
                    answer.status = resp.status
                    if isinstance(payload, dict) and resp.status in (200, 201):
                        answer.created = bool(payload.get("created"))
                        answer.touches = int(payload.get("touches", 0))
                        answer.tasks = int(payload.get("tasks", 0))
                    else:
                        answer.error = str(payload)[:200]
            except (aiohttp.ClientError, TimeoutError) as exc:
                answer.error = type(exc).__name__

        # Warm-up outside the clock: journey loading, first connections, first queries.
        for body in warmup:
            await send(body, Answer(body["event_id"], body["type"]), None)

        answers = [Answer(b["event_id"], b["type"]) for b in bodies]
        start = asyncio.Event()
        tasks = [asyncio.create_task(send(b, a, start)) for b, a in zip(bodies, answers, strict=True)]
        await asyncio.sleep(0.2)  # every task is parked on the start signal before the clock starts
        server_before = tree_cpu_s(server_pid)
        client_before = time.process_time()
        began = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
        client = time.process_time() - client_before
        server_after = tree_cpu_s(server_pid)
    server = server_after - server_before if server_before is not None and server_after is not None else None
    return Burst(answers, wall, server, client)


@dataclass
class Stored:
    events: int
    processed: int
    touches: int
    tasks: int
    extra_rows: int  # rows beyond one per event id (the unique key allows none)


def read_back(url: str) -> Stored:
    from sqlalchemy import text

    from store.db import make_engine

    engine = make_engine(url)
    burst = "e.external_id LIKE 'burst-%'"
    with engine.connect() as conn:
        events, processed, surplus = conn.execute(text(
            "SELECT COUNT(DISTINCT external_id), COUNT(processed_at), COUNT(*) - COUNT(DISTINCT external_id) "
            f"FROM event e WHERE {burst}")).one()
        counts = {}
        # Touches a delivery rule dropped are stored too (status 'dropped'); answers count planned ones.
        for table, extra in (("touch", " AND t.status <> 'dropped'"), ("agent_task", "")):
            counts[table] = conn.execute(text(
                f"SELECT COUNT(*) FROM {table} t JOIN event e ON t.customer_id = e.customer_id "
                f"AND t.occurrence = 'event-' || CAST(e.id AS VARCHAR(20)) WHERE {burst}{extra}")).scalar_one()
    engine.dispose()
    return Stored(int(events), int(processed), int(counts["touch"]), int(counts["agent_task"]), int(surplus))


def run(url: str, args: argparse.Namespace) -> tuple[Burst, Stored]:
    customers = prepare(url, args.size)
    duplicates = round(args.events * args.duplicates)
    bodies = burst_bodies(customers, args.events, duplicates, args.seed)
    warmup = [{"event_id": f"warm-{i}", "type": kind, "customer_id": customer, "data": data}
              for i, (kind, customer, data) in enumerate(plan_events(customers[::-1], args.warmup, args.seed + 2))]
    server = BurstServer(url, args.profile, args.workers)
    try:
        server.wait_ready()
        backend = url.split(":", 1)[0].split("+", 1)[0]
        print(f"console on uvicorn ({backend}, {args.workers} worker(s)): {len(bodies)} concurrent "
              f"events ({duplicates} repeats of an event id in the same burst)", flush=True)
        burst = asyncio.run(fire(server.base, bodies, warmup, server.proc.pid))
    finally:
        server.stop()
    return burst, read_back(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", "--customers", dest="size", type=int, default=10_000,
                        help="customers in the seeded book (default 10,000)")
    parser.add_argument("--events", type=int, default=BAR_EVENTS, help="requests in the burst (default 1,000)")
    parser.add_argument("--duplicates", type=float, default=0.05,
                        help="share of the burst repeating another request's event id (default 0.05)")
    parser.add_argument("--warmup", type=int, default=5, help="events sent one by one before the burst")
    parser.add_argument("--postgres", metavar="URL", help="run on a throw-away database on this PostgreSQL server")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument("--profile", metavar="FILE",
                        help="run the server under py-spy record; .svg, .json or collapsed stacks")
    parser.add_argument("--seed", type=int, default=11)
    add_common(parser)
    args = parser.parse_args()
    if args.workers > 1 and not args.postgres:
        parser.error("--workers > 1 needs --postgres (SQLite takes one writer process)")
    if args.workers > 1 and args.profile:
        parser.error("--profile runs one server process: leave out --workers")

    if args.postgres:
        from tests.db_support import scratch_postgres_database

        admin = args.postgres
        if admin.startswith(("postgresql://", "postgres://")):
            admin = "postgresql+psycopg://" + admin.split("://", 1)[1]
        with scratch_postgres_database(admin, f"event_burst_{uuid.uuid4().hex[:8]}") as (url, _):
            burst, stored = run(url, args)
        backend = "postgresql"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            burst, stored = run(f"sqlite:///{Path(tmp) / 'burst.db'}", args)
        backend = "sqlite"

    answers, wall = burst.answers, burst.wall_s
    ok = [a for a in answers if a.status in (200, 201)]
    failed = [a for a in answers if a.status not in (200, 201)]
    distinct = len({a.event_id for a in answers})
    created = Counter(a.event_id for a in ok if a.created)
    answered_twice = sum(n - 1 for n in created.values() if n > 1)
    reported_touches = sum(a.touches for a in ok)
    reported_tasks = sum(a.tasks for a in ok)
    # Acted on more than answered (a repeat planned again) or less (an answered event never planned).
    duplicates = answered_twice + stored.extra_rows + max(0, stored.tasks - reported_tasks) \
        + max(0, stored.touches - reported_touches)
    lost = (distinct - stored.events) + (stored.events - stored.processed) + max(0, reported_tasks - stored.tasks) \
        + max(0, reported_touches - stored.touches) + (distinct - len(created))
    latencies = [a.latency_s for a in ok if a.latency_s is not None]
    print(f"{len(answers)} requests ({distinct} distinct event ids): {len(ok)} answered 2xx "
          f"({sum(created.values())} created, {len(ok) - sum(created.values())} repeats), {len(failed)} failed",
          flush=True)
    print(f"store: {stored.events} events ({stored.processed} processed), {stored.touches} touches "
          f"({reported_touches} answered), {stored.tasks} tasks ({reported_tasks} answered)", flush=True)
    for a in failed[:5]:
        print(f"  failed: {a.type} status {a.status}: {a.error}")

    bar = BAR_WALL_S * len(answers) / BAR_EVENTS
    report = Report("event_burst", args.size, "customers")
    report.meta.update({"backend": backend, "workers": args.workers, "requests": len(answers),
                        "distinct_events": distinct, "failed": len(failed)})
    report.add("wall_s", f"{len(answers):,} concurrent events, all answered", wall, "s",
               bar=f"<= {bar:g}", met=wall <= bar and not failed, digits=2)
    report.add("answered_per_s", "answered per second", len(ok) / wall if wall > 0 else float("nan"), "events/s")
    report.add("p50_ms", "request p50", percentile(latencies, 50) * 1000, "ms", digits=0)
    report.add("p99_ms", "request p99", percentile(latencies, 99) * 1000, "ms", digits=0)
    report.add("max_ms", "request max", max(latencies, default=float("nan")) * 1000, "ms", digits=0)
    server_cpu = burst.server_cpu_s if burst.server_cpu_s is not None else float("nan")
    report.add("server_cpu_ms_per_event", "console CPU per request", server_cpu / len(answers) * 1000, "ms",
               digits=2)
    report.add("client_cpu_s", "client CPU for the burst", burst.client_cpu_s, "s", digits=2)
    report.add("failed", "requests not answered 2xx", len(failed), "requests", bar="= 0", met=not failed, digits=0)
    report.add("events_stored", "distinct events stored / sent", stored.events / max(1, distinct), "ratio", digits=3)
    report.add("events_processed", "events processed / stored", stored.processed / max(1, stored.events), "ratio",
               digits=3)
    report.add("touches", "touches created by the burst", stored.touches, "touches", digits=0)
    report.add("tasks", "tasks created by the burst", stored.tasks, "tasks", digits=0)
    report.add("duplicates", "events acted on twice", duplicates, "events", bar="= 0", met=duplicates == 0, digits=0)
    report.add("lost", "events stored or acted on short", lost, "events", bar="= 0", met=lost == 0, digits=0)
    return report.finish(args)


if __name__ == "__main__":
    sys.exit(main())
