"""A real Prefect server on loopback for scaled-out tests (its own PREFECT_HOME and SQLite
database), the flows deployed to a process work pool, and workers: started per test and stopped
when it ends, however it ends."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Spawned

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call of the server's REST API. A 503 is asked again: the server answers it when its own
    SQLite database is busy, which a loaded machine makes likely."""
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(20):
        req = urllib.request.Request(f"{base}{path}", data=data, headers={"Content-Type": "application/json"},
                                     method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or attempt == 19:
                raise
        time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM first, so a worker finishes its flow run; the test's ``spawn`` kills what is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)


@pytest.fixture
def prefect_server(tmp_path: Path, spawn: Spawned) -> Iterator[tuple[str, dict[str, str]]]:
    """(API base URL, environment for processes that use the server)."""
    port = free_port()
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "TWILIO_", "WECHAT_", "SMTP_", "EMAIL_"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    home.mkdir()
    log = (tmp_path / "server.log").open("wb")
    # Its own process group: stopped with everything it started when the test ends, however it ends.
    server = spawn([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                   env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}/api"
    try:
        # Ready when its health endpoint answers; a busy machine may take minutes to get there.
        deadline = time.monotonic() + 300
        while True:
            try:
                if api(base, "/health") is True:
                    break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "Prefect server did not become healthy"
            time.sleep(0.5)
        yield base, env
    finally:
        stop(server)
        log.close()


def deploy(env: dict[str, str], pool: str) -> str:
    """``journeys deploy`` without schedules; its output."""
    deployed = subprocess.run([str(BIN / "journeys"), "deploy", "--pool", pool, "--no-schedules"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert deployed.returncode == 0, deployed.stderr
    return deployed.stdout


def start_workers(spawn: Spawned, env: dict[str, str], pool: str, tmp_path: Path, count: int = 2,
                  limit: int = 1, **extra_env: str) -> list[subprocess.Popen[Any]]:
    """``count`` process workers on ``pool`` (logs in ``tmp_path/w<i>.log``; each its own outbox)."""
    workers = []
    for i in range(1, count + 1):
        wenv = {**env, "JOURNEYS_OUTBOX_DIR": str(tmp_path / f"outbox-w{i}"), **extra_env}
        workers.append(spawn(
            [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process",
             "--name", f"w{i}", "--limit", str(limit)],
            env=wenv, cwd=tmp_path, stdout=(tmp_path / f"w{i}.log").open("wb"), stderr=subprocess.STDOUT))
    return workers


def deployment_ids(base: str) -> dict[str, str]:
    return {d["name"]: d["id"] for d in api(base, "/deployments/filter", {})}


def wait_runs(base: str, ids: list[str], timeout: float = 300) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        states = {}
        for run_id in ids:
            run = api(base, f"/flow_runs/{run_id}")
            assert isinstance(run, dict)
            states[run_id] = run["state"]["type"]
        if all(s in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for s in states.values()):
            return states
        assert time.monotonic() < deadline, f"flow runs not finished: {states}"
        time.sleep(1)
