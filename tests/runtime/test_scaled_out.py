"""Scaled out, for real: a Prefect server on loopback (its own PREFECT_HOME and SQLite database),
the flows deployed to a process work pool, two workers, plan + two concurrent dispatch runs on
PostgreSQL. Every touch is sent exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from store.db import make_engine
from store.migrate import upgrade
from tests.conftest import Spawned
from tests.dispatch_support import make_customers, make_touches

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api(base: str, path: str, body: dict | None = None) -> object:  # type: ignore[type-arg]
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}{path}", data=data, headers={"Content-Type": "application/json"},
                                 method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM first, so a worker finishes its flow run; the test's ``spawn`` kills what is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)


@pytest.fixture
def prefect_server(tmp_path: Path, spawn: Spawned) -> Iterator[tuple[str, dict[str, str]]]:
    port = _free_port()
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
                if _api(base, "/health") is True:
                    break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "Prefect server did not become healthy"
            time.sleep(0.5)
        yield base, env
    finally:
        _stop(server)
        log.close()


def _wait_runs(base: str, ids: list[str], timeout: float = 240) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        states = {}
        for run_id in ids:
            run = _api(base, f"/flow_runs/{run_id}")
            assert isinstance(run, dict)
            states[run_id] = run["state"]["type"]
        if all(s in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for s in states.values()):
            return states
        assert time.monotonic() < deadline, f"flow runs not finished: {states}"
        time.sleep(1)


def test_two_workers_on_a_process_pool_send_every_touch_once(
    prefect_server: tuple[str, dict[str, str]], pg_url: str, tmp_path: Path, spawn: Spawned
) -> None:
    base, env = prefect_server
    upgrade(pg_url)
    engine = make_engine(pg_url)
    ids = make_customers(engine, 4000)
    make_touches(engine, ids)
    with engine.begin() as conn:
        conn.execute(text("UPDATE touch SET template = 'silver_weekly_push'"))
    env = {**env, "JOURNEYS_DATABASE_URL": pg_url, "JOURNEYS_DISPATCH_WORKERS": "2"}

    deployed = subprocess.run([str(BIN / "journeys"), "deploy", "--pool", "journeys-test", "--no-schedules"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    assert "dispatch/dispatch" in deployed.stdout and "plan/plan" in deployed.stdout

    workers = []
    for i in (1, 2):
        wenv = {**env, "JOURNEYS_OUTBOX_DIR": str(tmp_path / f"outbox-w{i}")}
        workers.append(spawn(
            [str(BIN / "prefect"), "worker", "start", "--pool", "journeys-test", "--type", "process",
             "--name", f"w{i}", "--limit", "1"],
            env=wenv, cwd=tmp_path, stdout=(tmp_path / f"w{i}.log").open("wb"), stderr=subprocess.STDOUT))
    try:
        deployments = {d["name"]: d["id"] for d in _api(base, "/deployments/filter", {})}  # type: ignore[union-attr]
        run_ids = []
        for name, params in (("plan", {}), ("dispatch", {"batch_size": 500}), ("dispatch", {"batch_size": 500})):
            run = _api(base, f"/deployments/{deployments[name]}/create_flow_run", {"parameters": params})
            assert isinstance(run, dict)
            run_ids.append(run["id"])
        states = _wait_runs(base, run_ids)
        assert set(states.values()) == {"COMPLETED"}, states
    finally:
        for w in workers:
            _stop(w)

    keys: Counter[str] = Counter()
    for outbox in tmp_path.glob("outbox-w*/sms.jsonl"):
        keys.update(json.loads(line)["touch_key"] for line in outbox.read_text().splitlines())
    assert len(keys) == 4000 and max(keys.values()) == 1
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT status, count(*) FROM touch GROUP BY status")).all()) == {"sent": 4000}
    engine.dispose()
