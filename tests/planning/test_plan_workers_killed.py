"""Planning processes do not outlive a run killed outright (``engine.planning.plan_workers``).

A run ended by ``kill -9`` (or the out-of-memory killer) cannot shut its pool down; its workers, each
holding both ends of the pool's queues, waited for their next chunk forever. A real program plans a
seeded book in two worker processes, over and over, and is SIGKILLed while its workers run; nothing it
started may be left, and the next run plans what the killed one did not commit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Spawned

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = """\
import sys
from datetime import UTC, date, datetime, timedelta

from engine.demo.seeding import seed_book
from engine.planning.planner import plan
from store.migrate import upgrade


def main() -> None:
    url = sys.argv[1]
    upgrade(url)
    seed_book(url, 400, seed=1, as_of=date(2027, 2, 1))
    print("seeded", flush=True)
    at = datetime(2027, 3, 1, 16, tzinfo=UTC)
    while True:  # a month at a time, each in a new pool of two workers
        plan(at + timedelta(days=30), at, url=url, workers=2, chunk=5)
        at += timedelta(days=30)


if __name__ == "__main__":
    main()
"""


def _workers(spawn: Spawned, program: int) -> list[int]:
    found = []
    for pid in spawn.left_running():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if pid != program and b"spawn_main" in command:
            found.append(pid)
    return found


def test_a_killed_run_leaves_no_planning_process(spawn: Spawned, tmp_path: Path) -> None:
    script = tmp_path / "plan_forever.py"
    script.write_text(PROGRAM, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JOURNEYS_PLAN_WORKERS": ""}
    program = spawn([sys.executable, str(script), f"sqlite:///{tmp_path / 'book.db'}"], env=env, cwd=ROOT,
                    stdout=subprocess.PIPE, text=True)
    assert program.stdout is not None
    assert program.stdout.readline().strip() == "seeded"
    # Killed while a worker has been up for a while, in a month's pool of 80 chunks: started and taking
    # chunks (a worker killed while still being spawned, or told to stop, ends by itself).
    seen: dict[int, float] = {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        now = time.monotonic()
        workers = _workers(spawn, program.pid)
        seen = {pid: seen.get(pid, now) for pid in workers}
        if any(now - since >= 3 for since in seen.values()):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("no planning process ran for 3 s")
    os.kill(program.pid, signal.SIGKILL)
    program.wait()
    assert spawn.left_after() == []
