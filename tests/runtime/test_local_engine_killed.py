"""Prefect's local engine does not outlive a program killed outright (``engine.runtime.orphan_guard``).

A program ended by ``kill -9`` (or the out-of-memory killer) runs no exit code; its Prefect server
used to stay behind, holding a port and its database. A real program starts the real local engine
as ``journeys run`` and ``journeys demo`` do, and is SIGKILLed; nothing it started may be left.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from tests.conftest import Spawned

PROGRAM = """\
import sys, time
from prefect.server.api.server import SubprocessASGIServer
from engine.runtime.local_engine import start_local_engine
start_local_engine()
server = next(s for s in SubprocessASGIServer._instances.values() if s.server_process is not None)
print(server.server_process.pid, flush=True)
if sys.argv[1] == "stop":
    from engine.runtime.local_engine import stop_local_engine
    stop_local_engine()
    print("stopped", flush=True)
time.sleep(600)
"""


def _start(spawn: Spawned, tmp_path: Path, how: str) -> tuple[int, int]:
    """The program's pid and its Prefect server's, once the server answers."""
    import subprocess

    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    program = spawn([sys.executable, "-c", PROGRAM, how], env=env, stdout=subprocess.PIPE, text=True,
                    cwd=Path(__file__).resolve().parents[2])
    assert program.stdout is not None
    line = program.stdout.readline()
    assert line.strip().isdigit(), f"the program did not start its local engine: {line!r}"
    if how == "stop":
        assert program.stdout.readline().strip() == "stopped"
    return program.pid, int(line)


def test_a_killed_program_leaves_no_prefect_server(spawn: Spawned, tmp_path: Path) -> None:
    program, server = _start(spawn, tmp_path, "keep")
    assert server in spawn.left_running()
    os.kill(program, signal.SIGKILL)
    assert spawn.left_after() == []


def test_a_server_stopped_the_normal_way_takes_its_guard_with_it(spawn: Spawned, tmp_path: Path) -> None:
    """The guard watches only while there is a server to stop: a program that stopped its local engine
    and goes on has nothing of it left running beside it."""
    program, _server = _start(spawn, tmp_path, "stop")
    assert spawn.left_after(but=program) == []
