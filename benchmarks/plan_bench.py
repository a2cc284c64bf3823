"""Planner benchmark: build a synthetic book with ``engine.demo.seeding`` and time the planner.

    .venv/bin/python benchmarks/plan_bench.py --customers 100000
    .venv/bin/python benchmarks/plan_bench.py --customers 1000000 --db var/bench-1m.db

Prints, for planning one day (written) and one month (dry run) with the shipped journeys,
the wall time and the peak RSS (``resource.getrusage``; each measurement runs in its own
child process so the peaks do not mix). A large book is planned on worker processes
(``engine.planning.plan_workers``); its peak RSS is then counted as the caller's peak plus, for each
worker, the largest worker's peak: an upper bound of what the run held at once.
``--workers N`` sets their number (default: the planner's own choice). The bar: one day for
1M customers in <= 60 s and <= 1 GB on a 2-core machine.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import Report, add_common  # noqa: E402  (needs the path above)

# Monday 1 March 2027: the weekly, monthly and quarterly cadences all fire.
DAY_END = datetime(2027, 3, 1, 16, 0, tzinfo=UTC)
BAR_WALL_S = 60
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", "--size", dest="customers", type=int, default=100_000,
                        help="customers in the book (--size: the harness's common name)")
    parser.add_argument("--db", default=None, help="SQLite file (default var/bench-<N>.db)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes planning the book (default: the planner's choice, one per core for 60k+)")
    parser.add_argument("--measure", choices=["day", "month"], help=argparse.SUPPRESS)
    add_common(parser)
    args = parser.parse_args()
    path = Path(args.db or f"var/bench-{args.customers}.db")
    url = f"sqlite:///{path}"
    os.environ["JOURNEYS_DATABASE_URL"] = url

    if args.measure == "day":
        print(json.dumps(_measure(url, DAY_END - timedelta(days=1), DAY_END, dry_run=False, workers=args.workers)))
        return
    if args.measure == "month":
        print(json.dumps(_measure(url, DAY_END, DAY_END + timedelta(days=30), dry_run=True, workers=args.workers)))
        return

    from engine.demo.seeding import seed_book
    from store.migrate import upgrade

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        upgrade(url)
        began = time.perf_counter()
        stats = seed_book(url, args.customers, seed=1, as_of=date(2027, 2, 1))
        print(f"seeded {args.customers} customers in {time.perf_counter() - began:.1f} s ({stats})", flush=True)
    report = Report("plan", args.customers, "customers")
    # The bar is for 1M customers; a smaller book is held to it pro rata.
    scale = args.customers / 1_000_000
    worker_args = ["--workers", str(args.workers)] if args.workers else []
    for kind in ("day", "month"):
        out = subprocess.run([sys.executable, __file__, "--customers", str(args.customers), "--db", str(path),
                              "--measure", kind, *worker_args], check=True, capture_output=True, text=True, cwd=ROOT)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        wall_bar = BAR_WALL_S * scale if kind == "day" else None
        report.add(f"{kind}_wall_s", f"one {kind}{' (dry run)' if kind == 'month' else ''}: wall",
                   figures["wall_s"], "s",
                   bar=f"<= {wall_bar:.1f} (60 s per 1M)" if wall_bar is not None else None,
                   met=figures["wall_s"] <= wall_bar if wall_bar is not None else None)
        report.add(f"{kind}_peak_rss_mb", f"one {kind}: peak RSS", figures["peak_rss_mb"], "MB",
                   bar=f"<= {BAR_RSS_MB}" if kind == "day" else None,
                   met=figures["peak_rss_mb"] <= BAR_RSS_MB if kind == "day" else None, digits=0)
        report.add(f"{kind}_cpu_s", f"one {kind}: CPU", figures["cpu_s"], "s")
        # Ratios to the bar (one day for 1M customers: 60 s, 1 GB); below 1 is inside it.
        print(f"{kind:5s} {args.customers} customers: {figures['wall_s']} s "
              f"({figures['wall_s'] / BAR_WALL_S:.2f} of {BAR_WALL_S} s), CPU {figures['cpu_s']} s, "
              f"peak RSS {figures['peak_rss_mb']} MB ({figures['peak_rss_mb'] / BAR_RSS_MB:.2f} of {BAR_RSS_MB} MB; "
              f"{figures['workers']} process(es): caller {figures['caller_rss_mb']} MB"
              f"{', each worker ≤ ' + str(figures['worker_rss_mb']) + ' MB' if figures['workers'] > 1 else ''}), "
              f"load average {figures['load'][0]} → {figures['load'][1]}, {figures['planned']} touches, "
              f"{figures['tasks']} tasks, dropped {figures['dropped']}, "
              f"moved {figures['moved']} ({figures['window']}{', dry run' if figures['dry_run'] else ''})",
              flush=True)
    sys.exit(report.finish(args))


if __name__ == "__main__":
    main()
