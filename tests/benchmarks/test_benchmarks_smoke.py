"""Every benchmark script still runs: each at a tiny size, as a subprocess, exactly as a person runs it.

Only that each exits 0 and ends with its ``BENCH {...}`` line carrying the expected figures is
checked; the figures themselves mean nothing at these sizes (and the machines are shared), so
no timing is asserted. ``--no-fail`` keeps a bar missed at a tiny size from failing the run.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness import parse_bench_line

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"

# script -> (tiny arguments, size it must report, figures it must report)
CASES: dict[str, tuple[list[str], int, set[str]]] = {
    "seed_bench": (["--size", "200"], 200,
                   {"sqlite_rows_per_s", "sqlite_customers_per_s", "sqlite_seconds", "sqlite_mb"}),
    "channel_throughput": (["--size", "200", "--warmup", "20"], 200,
                           {"sms_adapter_per_s", "sms_raw_per_s", "sms_x_raw",
                            "wechat_adapter_per_s", "wechat_raw_per_s", "wechat_x_raw",
                            "push_adapter_per_s", "push_raw_per_s", "push_x_raw"}),
    "dispatch_bench": (["--size", "200", "--per-task-n", "10", "--batch", "100"], 200,
                       {"raw_per_s", "per_task_per_s", "whole_per_s", "whole_x_raw", "whole_x_per_task",
                        "flow_per_s", "flow_x_raw", "flow_x_per_task"}),
    "inbox_bench": (["--size", "500", "--requests", "10"], 500, {"p50_ms", "p95_ms", "max_ms"}),
    "event_latency": (["--size", "200", "--seconds", "1", "--rate", "20", "--warmup", "2", "--per-source", "5",
                       "--source-rate", "10"], 200,
                      {"arrival_rate", "task_p50_ms", "task_p99_ms", "task_max_ms", "created_p50_ms",
                       "created_p99_ms", "all_p99_ms", "tasks_read_back",
                       *(f"{source}_p{q}_ms" for source in ("api", "sms_reply", "wechat_reply", "nps_digit",
                                                            "receipt", "task_outcome") for q in (50, 99)),
                       *(f"{source}_followed" for source in ("sms_reply", "wechat_reply", "nps_digit", "receipt",
                                                             "task_outcome"))}),
    "event_burst": (["--size", "200", "--events", "40", "--warmup", "2"], 200,
                    {"wall_s", "answered_per_s", "p50_ms", "p99_ms", "max_ms", "server_cpu_ms_per_event",
                     "client_cpu_s", "failed", "events_stored", "events_processed", "touches", "tasks",
                     "duplicates", "lost"}),
    "plan_bench": (["--size", "300"], 300, {"day_wall_s", "day_peak_rss_mb", "month_wall_s", "month_peak_rss_mb",
                                            "floor_wall_s", "day_x_floor", "tick_cpu_ms"}),
    "report_bench": (["--size", "200"], 200, {"unkeyed_s", "keyed_s", "same_figures"}),
    "stop_tick_bench": (["--size", "200"], 200, {"planned_ahead", "base_tick_cpu_ms", "first_tick_cpu_ms",
                                                 "later_tick_cpu_ms", "later_x_base"}),
    "cli_bench": (["--size", "1"], 1, {"help_cpu_s", "help_x_bar", "validate_file_cached_cpu_s",
                                       "validate_file_cold_cpu_s", "validate_all_cached_cpu_s"}),
    "ops_bench": (["--size", "100", "--touches", "300", "--requests", "3"], 100,
                  {"list_first_ms", "list_p50_ms", "list_p95_ms", "journey_p50_ms", "journey_p95_ms"}),
    "console_pages_bench": (["--size", "100", "--touches", "1000", "--tasks", "50", "--events", "100",
                             "--requests", "1"], 100,
                            {"inbox_ms", "inbox_queries", "task_queries", "supervisor_queries", "report_ms",
                             "admin_audit_queries"}),
}


def test_every_script_has_a_case() -> None:
    scripts = {p.stem for p in BENCH.glob("*.py")} - {"harness", "run_all", "__init__"}
    assert scripts == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_at_a_tiny_size(name: str, tmp_path: Path) -> None:
    script = BENCH / f"{name}.py"
    assert "benchmarks.harness" in script.read_text(encoding="utf-8"), f"{script.name} must use benchmarks/harness.py"
    args, size, keys = CASES[name]
    if name in ("plan_bench", "stop_tick_bench"):  # the books they keep for the next run: not in the checkout
        args = [*args, "--db", str(tmp_path / "book.db")]
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               DO_NOT_TRACK="1", JOURNEYS_SECRET_KEY="smoke-test-only")
    done = subprocess.run([sys.executable, str(script), *args, "--no-fail"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert done.stdout.splitlines()[-1].startswith("BENCH "), "the BENCH line must be the last line"
    payload = parse_bench_line(done.stdout)
    assert payload["bench"] and payload["size"] == size
    figures = payload["figures"]
    assert keys <= set(figures), f"missing figures: {sorted(keys - set(figures))}"
    for key in keys:
        value = figures[key]
        assert value is None or (isinstance(value, int | float) and math.isfinite(value))
    assert set(payload["bars"]) <= set(figures) and set(payload["verdicts"]) <= set(payload["bars"])
    assert payload["met"] in (True, False, None)
    # Every figure is also printed as one aligned line of the table.
    table = done.stdout.splitlines()[:-1]
    assert sum(1 for line in table if line.startswith("figure ")) == 1
    assert len(figures) <= len(table)
