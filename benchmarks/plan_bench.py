"""Planner benchmark: build a synthetic book with ``engine.demo.seeding`` and time the planner.

    .venv/bin/python benchmarks/plan_bench.py --customers 100000
    .venv/bin/python benchmarks/plan_bench.py --customers 1000000 --db var/bench-1m.db

Prints, each measured in its own child process so that the peaks do not mix:

- one day planned and written (on a copy of the seeded book): wall time, CPU of all processes and
  peak RSS (the caller's peak plus, per worker process, the largest worker's peak: an upper bound
  of what the run held at once);
- the write floor: the very rows that day wrote (touches, tasks, enrollments), bulk-inserted into
  another copy of the seeded book with no planning at all, committed per 20,000 customers like the
  planner; the day is reported as a multiple of it. Seconds do not transfer between machines (the
  same bench gave 86 s on one machine of this kind and 41.5 s on another, with seeding 1.9× slower
  too); the multiple does;
- a no-op tick: a written 5-minute run right after the day, with nothing due (what ``journeys run``
  does every 5 minutes most of the time), as CPU per 100k customers: it should not grow with the
  book (``engine.planning.due_chunks``);
- one month, dry run.

``--workers N`` sets the planner's processes (default: its own choice). The bars: one day for 1M
customers in <= 30 s and <= 1 GB on a 2-core machine (a smaller book pro rata).

``--postgres URL`` runs the same on PostgreSQL, the scaled-out store: the book is seeded once into
database ``plan_bench_<N>`` on that server (kept, like ``--db``, for the next run) and each part
works on a copy made with ``CREATE DATABASE … TEMPLATE``. There the planner's workers write
concurrently, and the floor is the same rows COPYed straight into their tables. CPU figures count
this script's processes only, not the server's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import Report, add_common  # noqa: E402  (needs the path above)

# Monday 1 March 2027: the weekly, monthly and quarterly cadences all fire.
DAY_END = datetime(2027, 3, 1, 16, 0, tzinfo=UTC)
BAR_WALL_S = 30
FLOOR_TABLES = ("enrollment", "touch", "agent_task")
FLOOR_CHUNK = 20_000
BAR_RSS_MB = 1024


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _measure(url: str, start: datetime, end: datetime, dry_run: bool, workers: int | None) -> dict[str, object]:
    from engine.planning.planner import plan

    load_before = os.getloadavg()[0]
    cpu_before = _cpu(resource.getrusage(resource.RUSAGE_SELF)) + _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
    began = time.perf_counter()
    result = plan(end, start, dry_run=dry_run, url=url, workers=workers)
    wall = time.perf_counter() - began
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # worker processes, once they have ended
    peak_kb = own.ru_maxrss + (result.workers * children.ru_maxrss if result.workers > 1 else 0)
    # CPU time of all the run's threads and workers: with the machine shared, wall time
    # alone says little; the load average (1 min) before and after says how shared it was.
    cpu = _cpu(own) + _cpu(children) - cpu_before
    return {
        "window": f"{start.isoformat()} → {end.isoformat()}", "dry_run": dry_run, "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2), "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "workers": result.workers, "caller_rss_mb": round(own.ru_maxrss / 1024, 1),
        "worker_rss_mb": round(children.ru_maxrss / 1024, 1) if result.workers > 1 else 0,
        "peak_rss_mb": round(peak_kb / 1024, 1), "planned": result.planned, "tasks": result.tasks,
        "dropped": dict(result.dropped), "moved": result.moved, "touches_written": result.touches_written,
    }


def _tick(url: str) -> dict[str, object]:
    """A written 5-minute run right after the day: nothing is due."""
    from engine.planning.planner import plan

    plan(DAY_END + timedelta(minutes=5), url=url)  # the first run after a day pays its imports and caches
    cpu_before = _cpu(resource.getrusage(resource.RUSAGE_SELF)) + _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
    began = time.perf_counter()
    runs, planned = 3, 0
    for i in range(runs):
        result = plan(DAY_END + timedelta(minutes=10 + 5 * i), url=url)
        planned += result.planned + result.tasks
    cpu = _cpu(resource.getrusage(resource.RUSAGE_SELF)) + _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
    return {"wall_s": round((time.perf_counter() - began) / runs, 3), "cpu_s": round((cpu - cpu_before) / runs, 3),
            "load": round(os.getloadavg()[0], 2), "planned": planned}


def _floor(planned: Path, seeded: Path) -> dict[str, object]:
    """Bulk-insert the rows the day wrote into the seeded book, with no planning: the write floor.

    The rows are read (untimed) in their stored form, nothing to convert, and written with the
    driver's executemany, a commit per ``FLOOR_CHUNK`` customers as the planner commits per chunk:
    the database's own cost of storing what the planner stores, into the same tables and indexes.
    As the writer does, it leaves out the columns that are NULL in every row (they are stored NULL
    all the same) and binds None through the store's NoneType adapter
    (``store.db.bind_none_as_null``): what each costs per value is in benchmarks/README.md."""
    import sqlite3

    from store.db import bind_none_as_null

    bind_none_as_null()
    source = sqlite3.connect(planned)
    tables = []
    for table in FLOOR_TABLES:
        names = [r[1] for r in source.execute(f"PRAGMA table_info({table})") if r[1] != "id"]
        filled = 'SELECT 1 FROM {} WHERE "{}" IS NOT NULL LIMIT 1'  # nosec B608 # names from the schema
        names = [n for n in names if source.execute(filled.format(table, n)).fetchone()]
        cols = ", ".join(f'"{n}"' for n in names)
        sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' for _ in names)})"  # nosec B608 # names from the schema
        rows = source.execute(f"SELECT {cols} FROM {table} ORDER BY customer_id").fetchall()  # nosec B608
        tables.append((sql, names.index("customer_id"), rows))
    source.close()
    target = sqlite3.connect(seeded)
    target.execute("PRAGMA journal_mode=WAL")
    target.execute("PRAGMA synchronous=NORMAL")  # as the store's own connections (store.db)
    last = max((rows[-1][at] for _, at, rows in tables if rows), default=0)
    cpu_before = _cpu(resource.getrusage(resource.RUSAGE_SELF))
    began = time.perf_counter()
    taken = [0] * len(tables)
    for upto in range(FLOOR_CHUNK, int(last) + FLOOR_CHUNK, FLOOR_CHUNK):
        for i, (sql, at, rows) in enumerate(tables):
            end = taken[i]
            while end < len(rows) and rows[end][at] <= upto:
                end += 1
            target.executemany(sql, rows[taken[i]:end])
            taken[i] = end
        target.commit()
    wall = time.perf_counter() - began
    cpu = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - cpu_before
    target.close()
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "rows": sum(len(r) for _, _, r in tables),
            "load": round(os.getloadavg()[0], 2)}


def _floor_postgres(planned_url: str, target_url: str) -> dict[str, object]:
    """The write floor on PostgreSQL: the day's rows, read chunk by chunk (untimed) from the planned
    copy and COPYed straight into the seeded copy's tables (the writer COPYs into a staging table
    and inserts from there, for its conflict clause), a commit per ``FLOOR_CHUNK`` customers. Only
    the COPYs and commits are timed."""
    import sqlalchemy as sa
    from sqlmodel import SQLModel

    import store.models  # noqa: F401  (the tables' metadata)
    from store.db import make_engine

    source, target = make_engine(planned_url), make_engine(target_url)
    tables = [SQLModel.metadata.tables[name] for name in FLOOR_TABLES]
    with source.connect() as conn:
        last = max(conn.execute(sa.select(sa.func.max(t.c.customer_id))).scalar() or 0 for t in tables)
    wall = cpu = 0.0
    rows_written = 0
    with source.connect() as reader, target.connect() as writer:
        raw: Any = writer.connection.driver_connection
        for upto in range(FLOOR_CHUNK, int(last) + FLOOR_CHUNK, FLOOR_CHUNK):
            batches = []
            for t in tables:
                names = [c.name for c in t.columns if c.name != "id"]
                # JSON as its text: psycopg would load it into lists, which COPY writes as arrays.
                read = [f"{c.name}::text" if isinstance(c.type, sa.JSON) else c.name for c in t.columns
                        if c.name != "id"]
                with reader.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
                    cursor.execute(f"SELECT {', '.join(read)} FROM {t.name} "  # nosec B608 # names from the schema
                                   "WHERE customer_id > %s AND customer_id <= %s", (upto - FLOOR_CHUNK, upto))
                    batches.append((t.name, names, cursor.fetchall()))
            cpu_before = _cpu(resource.getrusage(resource.RUSAGE_SELF))
            began = time.perf_counter()
            with raw.cursor() as cursor:
                for name, names, rows in batches:
                    with cursor.copy(f"COPY {name} ({', '.join(names)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                    rows_written += len(rows)
            raw.commit()
            wall += time.perf_counter() - began
            cpu += _cpu(resource.getrusage(resource.RUSAGE_SELF)) - cpu_before
    source.dispose()
    target.dispose()
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "rows": rows_written,
            "load": round(os.getloadavg()[0], 2)}


class _SqliteBooks:
    """The seeded book as a SQLite file, and copies of it beside it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.fresh = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)

    def copy(self, suffix: str) -> str:
        target = self.path.with_name(f"{self.path.stem}.{suffix}.db")
        _copy(self.path, target)
        return f"sqlite:///{target}"

    def drop(self, url: str) -> None:
        copy = Path(url.removeprefix("sqlite:///"))
        for leftover in (copy, copy.with_name(copy.name + "-wal"), copy.with_name(copy.name + "-shm")):
            leftover.unlink(missing_ok=True)


class _PostgresBooks:
    """The seeded book as database ``plan_bench_<N>`` on a PostgreSQL server, kept between runs, and
    copies of it made by the server itself (``CREATE DATABASE … TEMPLATE``)."""

    def __init__(self, server_url: str, customers: int) -> None:
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url

        from store.db import make_engine

        self._server = make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
        self._admin = make_engine(self._server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
        self.name = f"plan_bench_{customers}"
        with self._admin.connect() as conn:
            self.fresh = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                      {"n": self.name}).first() is None
            if self.fresh:
                conn.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        self.url = self._url(self.name)

    def _url(self, name: str) -> str:
        return self._server.set(database=name).render_as_string(hide_password=False)

    def copy(self, suffix: str) -> str:
        import sqlalchemy as sa

        from store.db import get_engine

        get_engine(self.url).dispose()  # a template must have no open connections
        name = f"{self.name}_{suffix}"
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"'))
        return self._url(name)

    def drop(self, url: str) -> None:
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url

        from store.db import get_engine

        get_engine(url).dispose()
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))


def _copy(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite file (its WAL included), replacing ``target``."""
    import sqlite3

    for leftover in (target, target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        leftover.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _child(args: argparse.Namespace, kind: str, url: str, *extra: str) -> dict[str, Any]:
    worker_args = ["--workers", str(args.workers)] if args.workers else []
    out = subprocess.run([sys.executable, __file__, "--customers", str(args.customers), "--url", url,
                          "--measure", kind, *worker_args, *extra], check=True, capture_output=True, text=True,
                         cwd=ROOT)
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", "--size", dest="customers", type=int, default=100_000,
                        help="customers in the book (--size: the harness's common name)")
    parser.add_argument("--db", default=None, help="SQLite file of the seeded book (default var/bench-<N>.db); "
                        "it is left as seeded, the runs work on copies beside it")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes planning the book (default: the planner's choice, one per core for 60k+)")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="run on this PostgreSQL server instead (the book kept as database plan_bench_<N>)")
    parser.add_argument("--measure", choices=["day", "month", "tick", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--planned", help=argparse.SUPPRESS)
    add_common(parser)
    args = parser.parse_args()
    if args.measure:
        url = args.url
        os.environ["JOURNEYS_DATABASE_URL"] = url

    if args.measure == "day":
        print(json.dumps(_measure(url, DAY_END - timedelta(days=1), DAY_END, dry_run=False, workers=args.workers)))
        return
    if args.measure == "month":
        print(json.dumps(_measure(url, DAY_END, DAY_END + timedelta(days=30), dry_run=True, workers=args.workers)))
        return
    if args.measure == "tick":
        print(json.dumps(_tick(url)))
        return
    if args.measure == "floor":
        if url.startswith("sqlite"):
            print(json.dumps(_floor(Path(args.planned.removeprefix("sqlite:///")), Path(url.removeprefix("sqlite:///")))))
        else:
            print(json.dumps(_floor_postgres(args.planned, url)))
        return

    from engine.demo.seeding import seed_book
    from store.migrate import upgrade

    books: _SqliteBooks | _PostgresBooks = (
        _PostgresBooks(args.postgres, args.customers) if args.postgres
        else _SqliteBooks(Path(args.db or f"var/bench-{args.customers}.db")))
    os.environ["JOURNEYS_DATABASE_URL"] = books.url
    upgrade(books.url)  # a book seeded earlier gets the schema's newer revisions
    if books.fresh:
        began = time.perf_counter()
        try:
            stats = seed_book(books.url, args.customers, seed=1, as_of=date(2027, 2, 1))
        except BaseException:
            books.drop(books.url)  # a half-seeded book would be taken for a whole one next time
            raise
        print(f"seeded {args.customers} customers in {time.perf_counter() - began:.1f} s ({stats})", flush=True)
    day_db, floor_db = books.copy("day"), books.copy("floor")
    report = Report("plan", args.customers, "customers")
    report.meta["database"] = "postgresql" if args.postgres else "sqlite"
    # The bar is for 1M customers; a smaller book is held to it pro rata.
    scale = args.customers / 1_000_000
    wall_bar = BAR_WALL_S * scale
    try:
        day = _child(args, "day", day_db)
        floor = _child(args, "floor", floor_db, "--planned", day_db)
        tick = _child(args, "tick", day_db)
        month = _child(args, "month", day_db)
    finally:
        for copy in (day_db, floor_db):
            books.drop(copy)
    report.add("day_wall_s", "one day: wall", day["wall_s"], "s", bar=f"<= {wall_bar:.1f} ({BAR_WALL_S} s per 1M)",
               met=day["wall_s"] <= wall_bar)
    report.add("day_peak_rss_mb", "one day: peak RSS", day["peak_rss_mb"], "MB", bar=f"<= {BAR_RSS_MB}",
               met=day["peak_rss_mb"] <= BAR_RSS_MB, digits=0)
    report.add("day_cpu_s", "one day: CPU", day["cpu_s"], "s")
    report.add("floor_wall_s", "write floor (same rows, no planning): wall", floor["wall_s"], "s")
    report.add("floor_cpu_s", "write floor: CPU", floor["cpu_s"], "s")
    report.add("day_x_floor", "one day as a multiple of the write floor (wall)",
               round(day["wall_s"] / max(floor["wall_s"], 1e-9), 2), "x")
    per_100k = tick["cpu_s"] / max(args.customers / 100_000, 1e-9)
    report.add("tick_cpu_ms", "no-op 5-minute tick: CPU", tick["cpu_s"] * 1000, "ms")
    report.add("tick_cpu_ms_per_100k", "no-op tick: CPU per 100k customers", per_100k * 1000, "ms")
    report.add("month_wall_s", "one month (dry run): wall", month["wall_s"], "s")
    report.add("month_cpu_s", "one month: CPU", month["cpu_s"], "s")
    report.add("month_peak_rss_mb", "one month: peak RSS", month["peak_rss_mb"], "MB", digits=0)
    for kind, figures in (("day", day), ("month", month)):
        print(f"{kind:5s} {args.customers} customers: {figures['wall_s']} s "
              f"({figures['wall_s'] / BAR_WALL_S:.2f} of {BAR_WALL_S} s), CPU {figures['cpu_s']} s, "
              f"peak RSS {figures['peak_rss_mb']} MB ({figures['peak_rss_mb'] / BAR_RSS_MB:.2f} of {BAR_RSS_MB} MB; "
              f"{figures['workers']} process(es): caller {figures['caller_rss_mb']} MB"
              f"{', each worker ≤ ' + str(figures['worker_rss_mb']) + ' MB' if figures['workers'] > 1 else ''}), "
              f"load average {figures['load'][0]} → {figures['load'][1]}, {figures['planned']} touches, "
              f"{figures['tasks']} tasks, dropped {figures['dropped']}, "
              f"moved {figures['moved']} ({figures['window']}{', dry run' if figures['dry_run'] else ''})",
              flush=True)
    print(f"floor {floor['rows']} rows bulk-inserted in {floor['wall_s']} s (CPU {floor['cpu_s']} s, load "
          f"{floor['load']}): the day took {day['wall_s'] / max(floor['wall_s'], 1e-9):.2f}× the write floor",
          flush=True)
    print(f"tick  5 minutes after the day ({tick['planned']} touches and tasks due in 3 runs): {tick['wall_s']} s "
          f"wall, {tick['cpu_s']} s CPU per run ({per_100k * 1000:.0f} ms per 100k customers; load {tick['load']})",
          flush=True)
    sys.exit(report.finish(args))


if __name__ == "__main__":
    main()
