"""Run every benchmark at the sizes quoted in benchmarks/README.md and print one Markdown table.

    .venv/bin/python benchmarks/run_all.py [--only event_latency inbox_bench ...] [--postgres URL]

Each script runs as a subprocess, one after the other (they would otherwise compete for the same
two cores), exactly as ``.venv/bin/python benchmarks/<name>.py <args>``; its own output streams
through, and its last line, ``BENCH {...}``, becomes rows of the table: figure / value / bar /
machine. The machine column carries the core count, memory and the 1-minute load average at the
end of that script's run: the machines are shared, and a figure means little without its load.
Exits 1 if any script failed or missed a bar.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import parse_bench_line  # noqa: E402

# The README's sizes: 100k customers for plan and seed, 20k sends, 100k tasks, 10k customers for events
# (and a burst of 1,000 of them).
RUNS: dict[str, list[str]] = {
    "seed_bench": ["--size", "100000"],
    "plan_bench": ["--customers", "100000"],
    "channel_throughput": ["--size", "20000"],
    "dispatch_bench": ["--size", "20000"],
    "inbox_bench": ["--size", "100000"],
    "event_latency": ["--size", "10000", "--seconds", "30", "--rate", "200"],
    "event_burst": ["--size", "10000", "--events", "1000"],
    "cli_bench": ["--size", "5"],
    "ops_bench": ["--size", "3000", "--touches", "60000"],
    "report_bench": ["--size", "100000"],
    "console_pages_bench": ["--size", "200000"],
    "stop_tick_bench": ["--size", "100000"],
}
# Scripts that also run once on PostgreSQL when --postgres is given (seed_bench seeds both in one run).
ALSO_ON_POSTGRES = ("event_burst",)


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def machine(payload: dict[str, Any] | None) -> str:
    cpus = (payload or {}).get("cpus") or os.cpu_count()
    mem = _memory_gib()
    load = (payload or {}).get("load_avg_1m")
    parts = [f"{cpus}-core", f"{mem:.0f} GiB" if mem else "? GiB", "loopback stand-ins"]
    if load is not None:
        parts.append(f"load {load:.1f}")
    return ", ".join(parts)


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    digits = 2 if unit == "ratio" else (0 if abs(value) >= 100 else 1)
    return f"{value:,.{digits}f} {unit}".strip()


def table(results: list[tuple[str, dict[str, Any] | None, str]]) -> list[str]:
    lines = ["| figure | value | bar | machine |", "|---|---|---|---|"]
    for name, payload, error in results:
        if payload is None:
            lines.append(f"| {name}: (no figures) | {error} | | {machine(None)} |")
            continue
        where = machine(payload)
        size = f"{payload['size']:,} {payload.get('size_unit', '')}".strip()
        for key, value in payload["figures"].items():
            unit = payload["units"].get(key, "")
            bar = payload["bars"].get(key, "")
            verdict = payload["verdicts"].get(key)
            bar_text = f"{bar} {unit} ({'met' if verdict else 'MISSED'})" if bar else ""
            lines.append(f"| {name} ({size}): {key} | {_value(value, unit)} | {bar_text} | {where} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", nargs="+", choices=sorted(RUNS), help="run only these scripts")
    parser.add_argument("--postgres", metavar="URL",
                        help="also seed on this PostgreSQL server (seed_bench) and run event_burst on it")
    args = parser.parse_args()
    results: list[tuple[str, dict[str, Any] | None, str]] = []
    failed = False
    runs = [(name, name, extra) for name, extra in RUNS.items()]
    if args.postgres:
        runs += [(f"{name} (postgresql)", name, [*RUNS[name], "--postgres", args.postgres])
                 for name in ALSO_ON_POSTGRES]
    for label, name, extra in runs:
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *extra]
        if name == "seed_bench" and args.postgres:
            cmd += ["--postgres", args.postgres]
        print(f"==> {' '.join(['benchmarks/' + name + '.py', *cmd[2:]])}", flush=True)
        began = time.perf_counter()
        # Output streams through (long runs show progress) and is kept to find the BENCH line.
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        captured = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            captured.append(line)
        code = proc.wait()
        print(f"<== {label}: exit {code} in {time.perf_counter() - began:.0f} s", flush=True)
        try:
            payload: dict[str, Any] | None = parse_bench_line("".join(captured))
            error = ""
        except ValueError:
            payload, error = None, f"exit {code}, no BENCH line"
        failed |= code != 0
        results.append((label, payload, error))
    print()
    for line in table(results):
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
