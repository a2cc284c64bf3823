"""CLI start-up benchmark: CPU (user + system) of ``journeys --help`` and ``journeys validate``.

    .venv/bin/python benchmarks/cli_bench.py --size 5

Each figure is the median over ``--size`` runs of a fresh ``journeys`` process (the installed
console script next to this Python, else ``python -c "from engine.cli import main; main()"``),
its CPU read from the kernel's accounting of the finished child (``RUSAGE_CHILDREN``), so the
machine's load changes the wall time but hardly the figure. Measured:

- ``journeys --help``;
- ``journeys validate journeys/gold-monthly-callback.yaml`` with an empty validation cache (a
  first run, or one after an edit) and again with the cache holding its result;
- ``journeys validate`` (every shipped journey) cold and cached.

The validation cache is a temporary folder (``JOURNEYS_CACHE_DIR``), never the user's. The bar:
``--help`` and a cached ``validate FILE`` under 0.5 s of CPU each; the cold runs are informational.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import Report, add_common  # noqa: E402  (needs the path above)

BAR_CPU_S = 0.5
JOURNEY = "journeys/gold-monthly-callback.yaml"


def _command() -> list[str]:
    script = Path(sys.executable).with_name("journeys")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(args: list[str], cache: Path) -> tuple[float, float]:
    """CPU and wall seconds of one ``journeys`` process (which must succeed)."""
    env = {**os.environ, "JOURNEYS_CACHE_DIR": str(cache)}
    before = _children_cpu()
    began = time.perf_counter()
    subprocess.run([*_command(), *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return _children_cpu() - before, time.perf_counter() - began


def _median(args: list[str], runs: int, *, cached: bool, scratch: Path) -> tuple[float, float]:
    cpu: list[float] = []
    wall: list[float] = []
    shared = Path(tempfile.mkdtemp(dir=scratch))
    if cached:
        _run(args, shared)  # fills the cache
    for _ in range(runs):
        # A cold run gets an empty cache folder of its own.
        c, w = _run(args, shared if cached else Path(tempfile.mkdtemp(dir=scratch)))
        cpu.append(c)
        wall.append(w)
    return statistics.median(cpu), statistics.median(wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", "--runs", dest="runs", type=int, default=5,
                        help="runs of each command; the median is reported")
    add_common(parser)
    args = parser.parse_args()
    report = Report("cli", args.runs, "runs")
    report.meta["command"] = " ".join(Path(part).name if i == 0 else part for i, part in enumerate(_command()))
    cases = [
        ("help", "journeys --help", ["--help"], False, True),
        ("validate_file_cached", "journeys validate FILE, cached", ["validate", JOURNEY], True, True),
        ("validate_file_cold", "journeys validate FILE, cold", ["validate", JOURNEY], False, False),
        ("validate_all_cached", "journeys validate (all), cached", ["validate"], True, False),
        ("validate_all_cold", "journeys validate (all), cold", ["validate"], False, False),
    ]
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as scratch:
        for key, label, cli_args, cached, has_bar in cases:
            cpu, wall = _median(cli_args, args.runs, cached=cached, scratch=Path(scratch))
            print(f"{label:36s} CPU {cpu:5.2f} s ({cpu / BAR_CPU_S:.2f} of the {BAR_CPU_S} s bar), "
                  f"wall {wall:5.2f} s, median of {args.runs}", flush=True)
            report.add(f"{key}_cpu_s", f"{label}: CPU", cpu, "s", digits=2,
                       bar=f"<= {BAR_CPU_S}" if has_bar else None, met=cpu <= BAR_CPU_S if has_bar else None)
            report.add(f"{key}_x_bar", f"{label}: CPU / bar", cpu / BAR_CPU_S, "ratio", digits=2)
            report.add(f"{key}_wall_s", f"{label}: wall", wall, "s", digits=2)
    return report.finish(args)


if __name__ == "__main__":
    sys.exit(main())
