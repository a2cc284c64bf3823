"""Seed N customers into a fresh SQLite file (and a fresh PostgreSQL database if a URL is given).

    .venv/bin/python benchmarks/seed_bench.py --size 100000     (or the customers as a positional)
    .venv/bin/python benchmarks/seed_bench.py 100000 --postgres postgresql://postgres@127.0.0.1:5432/test

Prints wall time, rows per second (customers + policies + claims + tier history) and
database size. The PostgreSQL run creates a throw-away database next to the one in
the URL and drops it afterwards unless --keep is given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Report, add_common
from engine.demo.seeding import SeedStats, seed_book
from store.db import make_engine
from store.migrate import upgrade
from tests.db_support import scratch_postgres_database

AS_OF = date(2026, 11, 22)


def _report(label: str, stats: SeedStats, seconds: float, size_bytes: int, report: Report) -> None:
    report.add(f"{label}_rows_per_s", f"{label} rows/s", stats.rows / seconds, "rows/s", digits=0)
    report.add(f"{label}_customers_per_s", f"{label} customers/s", stats.customers / seconds, "customers/s", digits=0)
    report.add(f"{label}_seconds", f"{label} wall time", seconds, "s")
    report.add(f"{label}_mb", f"{label} database size", size_bytes / 1e6, "MB")
    print(
        f"{label}: {stats.customers:,} customers, {stats.policies:,} policies, {stats.claims:,} claims, "
        f"{stats.tier_changes:,} tier changes = {stats.rows:,} rows in {seconds:.1f} s "
        f"({stats.rows / seconds:,.0f} rows/s, {stats.customers / seconds:,.0f} customers/s); "
        f"database {size_bytes / 1e6:,.1f} MB"
    )


def bench_sqlite(customers: int, seed: int, directory: Path, report: Report) -> None:
    path = directory / "seed_bench.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    started = time.perf_counter()
    stats = seed_book(url, customers, seed, as_of=AS_OF)
    seconds = time.perf_counter() - started
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))  # count the data, not an unmerged WAL
    engine.dispose()
    _report("sqlite", stats, seconds, sum(p.stat().st_size for p in directory.glob("seed_bench.db*")), report)


def bench_postgres(customers: int, seed: int, admin_url: str, keep: bool, report: Report) -> None:
    name = f"seed_bench_{uuid.uuid4().hex[:8]}"
    with scratch_postgres_database(admin_url, name, keep=keep) as (url, admin):
        upgrade(url)
        started = time.perf_counter()
        stats = seed_book(url, customers, seed, as_of=AS_OF)
        seconds = time.perf_counter() - started
        with admin.connect() as conn:
            size = conn.execute(text("SELECT pg_database_size(:n)"), {"n": name}).scalar_one()
        _report("postgresql", stats, seconds, int(size), report)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("customers", type=int, nargs="?", help="customers to seed (same as --size)")
    parser.add_argument("--size", type=int, help="customers to seed (default 100,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", metavar="URL", help="also seed a fresh database on this server")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument("--dir", type=Path, help="where to put the SQLite file (default: a temporary folder)")
    parser.add_argument("--skip-sqlite", action="store_true")
    add_common(parser)
    args = parser.parse_args()
    if args.size is not None and args.customers is not None and args.size != args.customers:
        parser.error("give the number of customers once (positional or --size)")
    args.customers = args.size or args.customers or 100_000
    report = Report("seed", args.customers, "customers")
    if not args.skip_sqlite:
        if args.dir:
            args.dir.mkdir(parents=True, exist_ok=True)
            for old in args.dir.glob("seed_bench.db*"):
                old.unlink()
            bench_sqlite(args.customers, args.seed, args.dir, report)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                bench_sqlite(args.customers, args.seed, Path(tmp), report)
    if args.postgres:
        url = args.postgres
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        bench_postgres(args.customers, args.seed, url, args.keep, report)
    return report.finish(args)


if __name__ == "__main__":
    sys.exit(main())
