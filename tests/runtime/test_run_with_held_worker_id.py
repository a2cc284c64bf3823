"""``journeys run`` given (``JOURNEYS_WORKER_ID``) a worker id a live dispatcher holds: refused before anything
starts with the one line ``journeys dispatch --worker`` gives (exit 1), not a traceback from every dispatch job.
The holder is a real lease held by this test's process; the service is the real command in a subprocess, on a
SQLite file and on PostgreSQL."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path

import pytest

from engine.sending.worker_lease import WorkerLease
from store.clock import utcnow
from store.db import make_engine
from tests.sending.test_crash_recovery import JOURNEYS


def _run(tmp_path: Path, worker: str) -> subprocess.CompletedProcess[str]:
    """``journeys run`` in a process group of its own: a service that starts instead of refusing is stopped
    with everything it started (Prefect's local engine) and fails the test."""
    service = subprocess.Popen([JOURNEYS, "run"], cwd=tmp_path, env={**os.environ, "JOURNEYS_WORKER_ID": worker},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = service.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(service.pid, signal.SIGKILL)
        out, err = service.communicate()
        pytest.fail(f"journeys run started instead of refusing the worker id: {out[-500:]} {err[-500:]}")
    return subprocess.CompletedProcess(service.args, service.returncode, out, err)


def test_the_service_given_a_held_worker_id_is_refused_in_one_line(migrated_any_db: str, tmp_path: Path) -> None:
    engine = make_engine(migrated_any_db)
    lease = WorkerLease(engine, "twin", utcnow)
    lease.take()
    try:
        done = _run(tmp_path, "twin")
    finally:
        lease.release()
        engine.dispose()
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"JOURNEYS_WORKER_ID 'twin' is held by a live dispatcher (pid {os.getpid()} on "), line
    assert "last seen" in line and "give this one another --worker" in line
    assert "journeys service" not in done.stdout  # refused before the service started anything


def test_the_service_given_a_worker_id_that_cannot_be_one_is_refused_in_one_line(db_url: str, tmp_path: Path) -> None:
    done = _run(tmp_path, "a#b")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "JOURNEYS_WORKER_ID 'a#b' contains '#', which separates the id from its process's instance on claims"]


def test_a_worker_id_taken_after_the_service_started_skips_dispatch_in_one_line(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another dispatcher takes the id once `journeys run` is up: the service's dispatch job (the function its
    scheduler calls every few seconds) sends nothing and says why in one line, once, not a flow run failing with
    WorkerIdHeld's traceback each time."""
    from engine.runtime import service

    monkeypatch.setenv("JOURNEYS_WORKER_ID", "twin")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(service, "_held_said", [], raising=False)
    engine = make_engine(migrated_any_db)
    lease = WorkerLease(engine, "twin", utcnow)
    lease.take()
    # A handler of the test's own on the service's logger: the migration's logging set-up replaced the root's.
    said: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = said.append  # type: ignore[method-assign]
    service.log.addHandler(handler)
    try:
        results = [service.job_dispatch() for _ in range(3)]
    finally:
        service.log.removeHandler(handler)
        lease.release()
        engine.dispose()
    assert results == [{"skipped": "worker id held by another dispatcher"}] * 3
    assert len(said) == 1 and said[0].exc_info is None, said
    assert said[0].getMessage().startswith(
        f"dispatch skipped: JOURNEYS_WORKER_ID 'twin' is held by a live dispatcher (pid {os.getpid()} on ")
