"""``journeys run`` as a real process: APScheduler (job store in the product database) runs dispatch
as local Prefect flow runs; SIGTERM stops it cleanly with nothing half-done; a restart carries on.
Prefect's local engine is started before the first job, and a start that fails ends the service
with the setting to change, leaving no server behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from sqlalchemy import text
from sqlalchemy.engine import Engine

from store.db import make_engine
from tests.conftest import Spawned
from tests.dispatch_support import daytime_zone, make_customers, make_touches

JOURNEYS = str(Path(sys.executable).parent / "journeys")


def _env(db_url: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TWILIO_", "WECHAT_", "SMTP_", "EMAIL_", "PREFECT_API"))}
    env.update(
        JOURNEYS_DATABASE_URL=db_url,
        JOURNEYS_OUTBOX_DIR=str(tmp / "outbox"),
        JOURNEYS_DISPATCH_EVERY="1",
        JOURNEYS_DISPATCH_BATCH="200",
        JOURNEYS_WORKER_ID="svc-1",
        # Left to their defaults (300 s, 60 s), whether a plan or ingest run falls inside the test
        # would depend on how fast the machine starts Prefect; this test is about dispatch and restart.
        JOURNEYS_PLAN_EVERY="3600",
        JOURNEYS_INGEST_EVERY="3600",
        PREFECT_HOME=str(tmp / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    return env


class _Output:
    """Everything a process prints, read as it comes by a thread of its own (a pipe left unread
    would fill and stall the service)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(list(self.lines))

    def finished(self) -> str:
        self._reader.join(timeout=10)
        return self.text()


def _wait_running(proc: subprocess.Popen[str], output: _Output, timeout: float = 330) -> None:
    """Until the service says it is running. Prefect's local engine may take up to its start-up
    bound (300 s) on a busy machine, so that wait is not charged to the sends."""
    deadline = time.monotonic() + timeout
    while "journeys service running" not in output.text():
        assert proc.poll() is None, output.finished()
        assert time.monotonic() < deadline, "the service did not start:\n" + output.text()
        time.sleep(0.2)


def _wait_sent(engine, n: int, proc: subprocess.Popen[str], timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            sent = conn.execute(text("SELECT count(*) FROM touch WHERE status = 'sent'")).scalar()
        if sent == n:
            return
        assert proc.poll() is None, f"the service ended with {proc.returncode}"
        assert time.monotonic() < deadline, f"only {sent} of {n} sent"
        time.sleep(0.5)


def _stop(proc: subprocess.Popen[str], output: _Output) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # the service writes where each thread is
        time.sleep(3)
        proc.kill()
        raise AssertionError(f"the service did not stop within 120 s of SIGTERM:\n{output.finished()}") from None
    out = output.finished()
    assert proc.returncode == 0, out
    return out


def _add_touches(engine: Engine, ids: list[int], step: str = "s1") -> None:
    """Touches for ``ids`` on a shipped template, so the service can render what it sends."""
    make_touches(engine, ids, step=step)
    with engine.begin() as conn:
        conn.execute(text("UPDATE touch SET template = 'silver_weekly_push'"))


def _serve_until_sent(spawn: Spawned, cwd: Path, env: dict[str, str], engine: Engine, n: int) -> str:
    """``journeys run`` until ``n`` touches are sent, then SIGTERM; returns what it printed."""
    service = spawn([JOURNEYS, "run"], cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = _Output(service)
    _wait_running(service, output)
    _wait_sent(engine, n, service)
    return _stop(service, output)


def test_service_dispatches_stops_cleanly_on_sigterm_and_carries_on_after_restart(
    db_url: str, tmp_path: Path, spawn: Spawned
) -> None:
    engine = make_engine(db_url)
    # The service dispatches at the wall clock: its customers are where it is day (quiet hours hold no send).
    ids = make_customers(engine, 700, timezone=daytime_zone())
    _add_touches(engine, ids[:500])
    env = _env(db_url, tmp_path)

    out = _serve_until_sent(spawn, tmp_path, env, engine, 500)
    assert "stopped cleanly" in out
    with engine.connect() as conn:
        jobs: dict[str, object] = dict(conn.execute(text("SELECT id, next_run_time FROM apscheduler_jobs")).all())
        assert conn.execute(text("SELECT count(*) FROM touch WHERE status = 'sending'")).scalar() == 0
    assert set(jobs) == {"dispatch", "plan", "outcome-ingest", "churn-check", "retier", "tier-review", "nps-survey"}

    # New work arrives while the service is down; the restarted service finds its jobs and sends it.
    _add_touches(engine, ids[500:], step="s2")
    out = _serve_until_sent(spawn, tmp_path, env, engine, 700)
    assert "added none" in out  # the stored jobs were kept, not re-created
    with engine.connect() as conn:
        assert conn.execute(text("SELECT next_run_time FROM apscheduler_jobs WHERE id = 'retier'")).scalar() == \
            jobs["retier"]
    lines = (tmp_path / "outbox" / "sms.jsonl").read_text().splitlines()
    assert len(lines) == 700
    assert spawn.left_running() == []  # Prefect's local server stopped with each service
    engine.dispose()


def test_service_that_cannot_start_prefect_says_which_setting_and_leaves_no_server(
    db_url: str, tmp_path: Path, spawn: Spawned
) -> None:
    # A timeout no server can meet stands for a machine too busy to start one in time.
    env = {**_env(db_url, tmp_path), "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "0"}
    service = spawn([JOURNEYS, "run"], cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE)
    out, err = service.communicate(timeout=300)
    assert service.returncode == 1, out + err
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in err and "then" in err  # two attempts
    assert "Traceback" not in err
    # Both attempts' server processes were stopped, not left running beside the next.
    assert spawn.left_running() == []
