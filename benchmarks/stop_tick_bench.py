"""A 5-minute tick after ops switch a journey off: what the stop costs the ticks that follow.

    .venv/bin/python benchmarks/stop_tick_bench.py --size 100000

Seeds a book (``engine.demo.seeding``; ``--db`` keeps it for the next run), plans it ahead as
``journeys run`` does from Monday 00:00 in Shanghai (so Monday's silver weekly push is planned,
not yet due), then times written ``plan`` ticks with nothing due, in CPU of this process and its
planning workers:

- three ticks with every journey running: the base;
- ``silver-weekly-push`` switched off; the first tick after it (the cap's contests run again for its
  customers: ``engine.planning.cap_again``), then five more.

The bar: the ticks after the first cost what the base ticks cost (at most 1.5 times): a stop is dealt
with once, not at every tick until its touches fall due.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import Report, add_common  # noqa: E402  (needs the path above)

MIDNIGHT = datetime(2027, 2, 28, 16, 0, tzinfo=UTC)  # Monday 1 March 2027, 00:00 in Shanghai
JOURNEY = "silver-weekly-push"
BAR_X_BASE = 1.5


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _ticks(url: str, first: int, count: int) -> list[float]:
    """CPU seconds of ``count`` ticks, 5 minutes apart, the first ``first`` minutes after midnight."""
    from engine.planning.planner import plan

    spent = []
    for i in range(count):
        before = _cpu()
        plan(MIDNIGHT + timedelta(minutes=first + 5 * i), url=url)
        spent.append(_cpu() - before)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000, help="customers in the book")
    parser.add_argument("--db", default=None,
                        help="SQLite file of the seeded, planned book (default var/stop-tick-<N>.db); kept for the "
                             "next run, which works on a copy")
    add_common(parser)
    args = parser.parse_args()
    book = Path(args.db or f"var/stop-tick-{args.size}.db")
    from store.migrate import upgrade

    if not book.exists():
        from engine.demo.seeding import seed_book
        from engine.planning.planner import plan_ahead

        book.parent.mkdir(parents=True, exist_ok=True)
        seeding = book.with_suffix(".seeding")
        url = f"sqlite:///{seeding}"
        os.environ["JOURNEYS_DATABASE_URL"] = url
        upgrade(url)
        began = time.perf_counter()
        seed_book(url, args.size, seed=1, as_of=date(2027, 2, 1))
        plan_ahead(MIDNIGHT, start=MIDNIGHT - timedelta(days=1), url=url)
        print(f"seeded and planned ahead {args.size} customers in {time.perf_counter() - began:.1f} s", flush=True)
        from store.db import get_engine

        get_engine(url).dispose()  # its write-ahead log folded in before the file is renamed
        seeding.rename(book)
    copy = book.with_suffix(".run.db")
    shutil.copy(book, copy)
    url = f"sqlite:///{copy}"
    os.environ["JOURNEYS_DATABASE_URL"] = url
    try:
        upgrade(url)
        from sqlalchemy import text
        from sqlmodel import Session

        from engine.language.journey_switches import ENABLED_PREFIX
        from store.db import get_engine
        from store.models import KeyValue

        with get_engine(url).connect() as conn:
            ahead = conn.execute(text("SELECT count(*) FROM touch WHERE journey_id = :j AND status = 'planned'"),
                                 {"j": JOURNEY}).scalar_one()
        _ticks(url, 5, 1)  # the first run pays its imports and caches
        base = _ticks(url, 10, 3)
        with Session(get_engine(url)) as session:
            session.add(KeyValue(key=f"{ENABLED_PREFIX}{JOURNEY}", value={"enabled": False, "by": "ops"},
                                 updated_at=MIDNIGHT))
            session.commit()
        after = _ticks(url, 25, 6)
    finally:
        from store.db import get_engine

        get_engine(url).dispose()
        copy.unlink(missing_ok=True)
    base_ms = 1000 * sum(base) / len(base)
    later_ms = 1000 * sum(after[1:]) / len(after[1:])
    ratio = later_ms / max(base_ms, 1e-9)
    listed = {name: ", ".join(f"{1000 * s:.0f}" for s in ticks) for name, ticks in (("base", base), ("after", after))}
    print(f"{ahead} touches of {JOURNEY} planned ahead; ticks (CPU ms): base {listed['base']}; after the switch "
          f"{listed['after']} (load {os.getloadavg()[0]:.1f})", flush=True)
    report = Report("stop_tick", args.size, "customers")
    report.add("planned_ahead", f"touches of {JOURNEY} planned ahead", ahead, digits=0)
    report.add("base_tick_cpu_ms", "tick, every journey running: CPU", base_ms, "ms")
    report.add("first_tick_cpu_ms", "first tick after the switch: CPU", 1000 * after[0], "ms")
    report.add("later_tick_cpu_ms", "later ticks: CPU", later_ms, "ms")
    report.add("later_x_base", "later ticks as a multiple of the base", ratio, "x", bar=f"<= {BAR_X_BASE}",
               met=ratio <= BAR_X_BASE, digits=2)
    sys.exit(report.finish(args))


if __name__ == "__main__":
    main()
