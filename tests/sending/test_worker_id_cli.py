"""``journeys dispatch --worker ID`` while another live process dispatches under that id: refused with one
line and exit code 1 (docs/cli.md), and nothing sent twice; once that one has stopped cleanly, the id is
free at once. The dispatchers are the real command in subprocesses, on a SQLite file and on PostgreSQL,
sending through the Twilio SDK to the Twilio stand-in in another process."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from store.db import make_engine
from tests.dispatch_support import daytime_zone, make_customers, make_touches
from tests.sending.test_crash_recovery import (  # noqa: F401 # twilio_process: a fixture
    JOURNEYS,
    _env,
    _summary,
    await_accepted,
    killed_once_accepted,
    twilio_process,
)

N = 2000
ROOT = Path(__file__).resolve().parents[2]
JOURNEY = "silver-weekly-push"



def _sms_touches(db_url: str, run_folder: Path) -> Engine:
    """N due marketing SMS of the shipped weekly push, its journey file in the run folder's journeys/ (a
    dispatcher sends the touches of the journeys in force only), to customers reachable by SMS alone."""
    (run_folder / "journeys").mkdir()
    shutil.copy(ROOT / "journeys" / f"{JOURNEY}.yaml", run_folder / "journeys")
    engine = make_engine(db_url)
    ids = make_customers(engine, N, timezone=daytime_zone())
    with engine.begin() as conn:
        conn.execute(text("UPDATE customer SET wechat_openid = NULL, email = NULL"))
    make_touches(engine, ids, channel="sms", journey=JOURNEY)
    with engine.begin() as conn:
        conn.execute(text("UPDATE touch SET template = 'silver_weekly_push', category = 'marketing'"))
    return engine


def test_a_second_dispatch_with_a_held_worker_id_is_refused_in_one_line(
    migrated_any_db: str, twilio_process: str, tmp_path: Path  # noqa: F811 # the fixture imported above
) -> None:
    engine = _sms_touches(migrated_any_db, tmp_path)
    env = _env(migrated_any_db, twilio_process)
    args = [JOURNEYS, "dispatch", "--worker", "twin", "--batch", "200"]

    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        await_accepted(first, twilio_process, 100, deadline, "the first dispatcher made no progress")

        second = subprocess.run([*args, "--once"], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=180)
        assert second.returncode == 1, second.stderr
        [line] = second.stderr.strip().splitlines()
        assert line.startswith("--worker 'twin' is held by a live dispatcher (pid "), line
        assert "last seen" in line and "give this one another --worker" in line
        assert second.stdout == ""

        await_accepted(first, twilio_process, N, deadline + 120, "the first dispatcher did not finish", pause=0.05)
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)
    assert first.returncode == 0

    # Let go of at its clean exit: the next process given the id takes it at once.
    third = subprocess.run([*args, "--once"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout.strip().splitlines()[-1])["claimed"] == 0

    summary = _summary(twilio_process)
    assert summary["duplicates"] == {} and summary["accepted"] == N
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT status, count(*) FROM touch GROUP BY status")).all()) == {"sent": N}
    engine.dispose()


def test_a_worker_id_that_cannot_be_one_is_refused_before_anything_starts(db_url: str, tmp_path: Path) -> None:
    """'#' separates the id from its process's instance on claims; the id must leave room for that in the column."""
    for worker, fault in (("a#b", "contains '#'"), ("w" * 56, "is 56 characters long, 55 at most")):
        done = subprocess.run([JOURNEYS, "dispatch", "--once", "--worker", worker], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [f"--worker {worker!r} {fault}" + (
            ", which separates the id from its process's instance on claims" if "#" in worker else "")]


def test_a_holder_killed_on_this_machine_frees_its_id_at_once(
    db_url: str, twilio_process: str, tmp_path: Path  # noqa: F811 # the fixture imported above
) -> None:
    """kill -9 leaves the id's row with a recent heartbeat; its process is gone from this machine, so a restart
    given the id takes it at once (not five minutes later) and settles the killed one's sends in flight once."""
    engine = _sms_touches(db_url, tmp_path)
    env = _env(db_url, twilio_process)
    args = [JOURNEYS, "dispatch", "--worker", "phoenix", "--batch", "200"]

    first = killed_once_accepted(args, tmp_path, env, twilio_process, 300, pause=0.01)
    with engine.connect() as conn:
        in_flight = conn.execute(text("SELECT count(*) FROM touch WHERE status = 'sending'")).scalar_one()
        [(killed_pid,)] = conn.execute(text("SELECT pid FROM worker_lease WHERE worker_id = 'phoenix'")).all()
    assert killed_pid == first.pid and in_flight > 0  # it died in the middle of a batch, its heartbeat recent

    second = subprocess.run([*args, "--once"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr
    reconciled = json.loads(second.stdout.strip().splitlines()[-1])["reconciled"]
    assert reconciled["found_sent"] + reconciled["resend"] == in_flight and reconciled["unknown"] == 0
    summary = _summary(twilio_process)
    assert summary["duplicates"] == {} and summary["accepted"] == N
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT status, count(*) FROM touch GROUP BY status")).all()) == {"sent": N}
        assert conn.execute(text("SELECT count(*) FROM worker_lease")).scalar_one() == 0  # let go of at its exit
    engine.dispose()
