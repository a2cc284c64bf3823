"""kill -9 of a dispatcher in the middle of 10,000 sends, then a restart: every touch reaches the
provider exactly once. The dispatcher is the real ``journeys dispatch`` in a subprocess, on a SQLite
file, sending through the Twilio SDK to a Twilio stand-in in another process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from engine.sending.claiming import claim_due
from engine.sending.reconcile import reconcile
from store.db import make_engine
from tests.dispatch_support import HttpAdapter, RecordingProvider, daytime_zone, make_customers, make_touches

ROOT = Path(__file__).resolve().parents[2]
JOURNEYS = str(Path(sys.executable).parent / "journeys")
N = 10_000


@pytest.fixture
def twilio_process() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.crash_standin", "0.002"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = json.loads(proc.stdout.readline())["port"]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _summary(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/_standin/summary", timeout=5) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def await_accepted(dispatcher: subprocess.Popen[Any], base: str, count: int, deadline: float, what: str, *,
                   pause: float = 0.02) -> None:
    """Waits, looking every ``pause`` seconds, until the stand-in at ``base`` has accepted ``count`` messages;
    fails with the dispatcher's errors if it exits first, or with ``what`` past ``deadline`` (time.monotonic)."""
    while _summary(base)["accepted"] < count:
        assert dispatcher.poll() is None, dispatcher.stderr.read() if dispatcher.stderr else ""
        assert time.monotonic() < deadline, what
        time.sleep(pause)


def killed_once_accepted(args: list[str], cwd: Path, env: dict[str, str], base: str, count: int, *,
                         pause: float = 0.02) -> subprocess.Popen[bytes]:
    """Starts the dispatcher ``args`` and kills it with SIGKILL (it can tidy nothing up) once the stand-in at
    ``base`` has accepted ``count`` messages: in the middle of its batches."""
    dispatcher = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    await_accepted(dispatcher, base, count, time.monotonic() + 120, "the dispatcher made no progress", pause=pause)
    dispatcher.send_signal(signal.SIGKILL)
    dispatcher.wait(10)
    return dispatcher


def _env(db_url: str, base: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "WECHAT_", "SMTP_", "EMAIL_"))}
    env.update(
        JOURNEYS_DATABASE_URL=db_url,
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN="standin-auth-token",
        TWILIO_FROM="+15005550006",
        TWILIO_API_BASE=base,
        # The touch key travels in the status-callback URL; nothing listens there in this test.
        JOURNEYS_PUBLIC_URL="http://127.0.0.1:9",
        JOURNEYS_LOG_LEVEL="WARNING",
    )
    env.pop("JOURNEYS_OUTBOX_DIR", None)
    return env


def test_kill_9_mid_send_then_restart_sends_every_touch_exactly_once(
    db_url: str, twilio_process: str, tmp_path: Path
) -> None:
    engine = make_engine(db_url)
    # The dispatcher runs at the wall clock: its customers are where it is day (quiet hours hold no send).
    ids = make_customers(engine, N, timezone=daytime_zone())
    with engine.begin() as conn:
        conn.execute(text("UPDATE customer SET wechat_openid = NULL, email = NULL"))
    make_touches(engine, ids, channel="sms")
    with engine.begin() as conn:
        conn.execute(text("UPDATE touch SET template = 'silver_weekly_push', category = 'marketing'"))
    env = _env(db_url, twilio_process)
    args = [JOURNEYS, "dispatch", "--worker", "crash-w1", "--batch", "500"]

    killed_once_accepted(args, tmp_path, env, twilio_process, 3000)
    accepted_at_kill = _summary(twilio_process)["accepted"]
    assert accepted_at_kill < N, "the dispatcher finished before it was killed"
    with engine.connect() as conn:
        in_flight = conn.execute(text("SELECT count(*) FROM touch WHERE status = 'sending'")).scalar()
    assert in_flight and in_flight > 0  # it really died in the middle of batches

    second = subprocess.run([*args, "--once"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout.strip().splitlines()[-1])
    print(f"accepted at kill {accepted_at_kill}, in flight {in_flight}, restart: {report}")
    assert report["reconciled"]["found_sent"] + report["reconciled"]["resend"] == in_flight
    assert report["reconciled"]["unknown"] == 0

    summary = _summary(twilio_process)
    assert summary["duplicates"] == {}
    assert summary["accepted"] == N
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM touch GROUP BY status")).all())
        sids = conn.execute(text("SELECT count(DISTINCT provider_message_id) FROM touch")).scalar()
    assert statuses == {"sent": N}
    assert sids == N
    engine.dispose()


def test_reconcile_without_provider_lookup_fails_unknown_rather_than_resend(db_url: str) -> None:
    """An adapter that can neither look a send up nor dedup it: at most once wins."""
    engine = make_engine(db_url)
    ids = make_customers(engine, 4)
    make_touches(engine, ids)
    assert len(claim_due(engine, "dead", 4)) == 4
    with RecordingProvider().running() as provider:
        adapter = HttpAdapter("sms", provider.port)
        # Claimed by another live worker a moment ago: not stranded yet (lease).
        assert asyncio.run(reconcile(engine, {"sms": adapter}, worker_id="me")).total == 0
        counts = asyncio.run(reconcile(engine, {"sms": adapter}, worker_id="dead"))
    assert counts.unknown == 4
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, error_reason FROM touch")).all()
    assert {(r.status, r.error_reason) for r in rows} == {("failed", "interrupted: delivery unknown")}
    assert provider.accepted == []
    engine.dispose()
