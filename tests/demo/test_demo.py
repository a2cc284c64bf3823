"""``journeys demo`` end to end: the real CLI in a subprocess, in a temporary directory, small numbers.

One run (300 customers, 7 days) is shared by most assertions below: it seeds, plans, dispatches to
the in-process stand-ins, replays receipts and replies, lets the agents work, and reports. Two more
runs show that the demo completes on a busy machine (two CPU-bound processes beside it) and that
ending it (SIGTERM) stops Prefect's local server with it. Every process a run starts is stopped
when its test ends, passed or failed.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import Spawned

ROOT = Path(__file__).resolve().parents[2]
TIERS = ("diamond", "platinum", "gold", "silver", "potential")
# A mainland mobile number, bare or with its +86 prefix (as the store keeps it, E.164).
MOBILE = re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)")


@dataclass(frozen=True)
class DemoRun:
    out: Path
    stdout: str
    stderr: str
    summary: dict[str, Any]


def _journeys_command() -> list[str]:
    script = Path(sys.executable).with_name("journeys")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from engine.cli import main; main()"]


def _demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JOURNEYS_", "PREFECT_", "TWILIO_", "WECHAT_", "SMTP_", "EMAIL_"))}
    env["JOURNEYS_LOG_LEVEL"] = "INFO"  # the terminal gets everything the product logs: all of it is checked
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run_demo(spawned: Spawned, workdir: Path, *args: str, timeout: float = 900) -> DemoRun:
    proc = spawned([*_journeys_command(), "demo", *args, "--out", "out"], cwd=workdir, env=_demo_env(),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"stdout:\n{stdout[-4000:]}\nstderr:\n{stderr[-4000:]}"
    # Prefect's local server, the stand-ins: everything the demo started ended with it.
    assert spawned.left_running() == []
    out = workdir / "out"
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return DemoRun(out, stdout, stderr, summary)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    spawned = Spawned()
    try:
        yield _run_demo(spawned, tmp_path_factory.mktemp("demo"), "--customers", "300", "--days", "7", "--seed", "3",
                        "--start", "2026-03-01")
    finally:
        spawned.end_all()


def test_summary_lists_every_tier_with_deliveries_and_tasks(demo: DemoRun) -> None:
    rows = [line for line in demo.stdout.splitlines() if any(f" {t} " in line for t in TIERS)]
    for tier in TIERS:
        assert any(re.search(rf"\b{tier}\b", line) for line in rows), f"{tier} missing from the summary table"
    assert re.search(r"^Total: planned \d", demo.stdout, re.M)
    # The full report follows: one row per §8 metric.
    from engine.loop.reports import COLUMNS

    for _key, heading, _kind in COLUMNS:
        assert re.search(rf"^\W*{re.escape(heading)}\s", demo.stdout, re.M), f"metric {heading!r} not in the report"
    # One progress line per simulated day.
    assert len(re.findall(r"^\s*day\s+\d+/7 2026-03-0\d", demo.stdout, re.M)) == 7
    total = demo.summary["total"]
    assert total["delivered"] > 0
    assert total["tasks"] > 0
    assert total["sla_judged"] > 0
    assert {row["tier"] for row in demo.summary["tiers"]} >= set(TIERS)
    simulated = demo.summary["simulated"]
    assert simulated["tasks_done"] > 0 and simulated["replies"] > 0


def test_charts_are_written(demo: DemoRun) -> None:
    names = {"reach_by_tier.png", "sla_compliance.png", "nps_trend.png", "churn_by_tier.png"}
    for name in names:
        data = (demo.out / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000, name
    assert set(demo.summary["charts"]) == names


def test_every_touch_sent_once_per_key(demo: DemoRun) -> None:
    with sqlite3.connect(demo.out / "demo.db") as db:
        sent = db.execute("SELECT count(*) FROM touch WHERE sent_at IS NOT NULL").fetchone()[0]
        assert sent > 0
        # Dispatch records one 'sent' outcome per accepted send; a touch moves to another channel
        # only after a permanent failure, so per (touch, channel) there is at most one.
        twice = db.execute(
            "SELECT t.key, o.channel, count(*) FROM outcome o JOIN touch t ON t.id = o.touch_id "
            "WHERE o.kind = 'sent' GROUP BY t.key, o.channel HAVING count(*) > 1"
        ).fetchall()
        assert twice == []
        keys = db.execute("SELECT count(*), count(DISTINCT key) FROM touch").fetchone()
        assert keys[0] == keys[1]
        # Every touch that went out is in a settled state; nothing is left claimed mid-send.
        assert db.execute("SELECT count(*) FROM touch WHERE status = 'sending'").fetchone()[0] == 0
        delivered_receipts = db.execute("SELECT count(*) FROM outcome WHERE kind = 'delivered'").fetchone()[0]
        assert delivered_receipts > 0
    providers = demo.summary["providers"]
    # What the stand-ins accepted, keyed by the touch's idempotency key: none twice.
    assert providers["duplicates"] == {"sms": {}, "wechat": {}, "email": {}, "push": {}, "webhook": {}}
    assert sum(providers["accepted"].values()) > 0
    # Issue 19: app push and the CRM webhook step are exercised in the demo's month.
    assert providers["accepted"]["push"] > 0 and providers["accepted"]["webhook"] > 0


def _local(stored: str, tz: str) -> datetime:
    """A UTC moment as SQLite holds it (``2026-03-01 02:00:00.000000``), in the customer's zone."""
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).astimezone(ZoneInfo(tz))


def test_each_new_step_and_channel_is_exercised_in_the_month(demo: DemoRun) -> None:
    """Issue M, from the run's database: a policy anniversary enters at 10:00 on the day the policy
    started; a wait until the next working day resumes at 10:00 on that day (the review call of an
    anniversary, one on a Sunday among them); a premium-due reminder goes out 7 days before the due
    date and waits until 20:00 on it; a webhook step calls the CRM and an app push is sent."""
    from engine.language.work_calendar import next_working_day

    with sqlite3.connect(demo.out / "demo.db") as db:
        anniversaries = db.execute(
            "SELECT t.planned_for, p.start_date, c.timezone FROM touch t JOIN customer c ON c.id = t.customer_id "
            "JOIN policy p ON t.occurrence = 'policy-' || p.id || '-start_date-2026' "
            "WHERE t.journey_id = 'policy-anniversary' AND t.step_id = 'thanks'").fetchall()
        assert anniversaries
        for planned, start, tz in anniversaries:
            at, started = _local(planned, tz), date.fromisoformat(start)
            assert ((at.month, at.day), at.time()) == ((started.month, started.day), wall_time(10, 0))
            assert at.year > started.year  # an anniversary, not the start
        calls = db.execute(
            "SELECT k.created_at, t.planned_for, c.timezone FROM agent_task k JOIN customer c ON c.id = k.customer_id "
            "JOIN touch t ON t.customer_id = k.customer_id AND t.journey_id = k.journey_id "
            "AND t.occurrence = k.occurrence AND t.step_id = 'thanks' WHERE k.journey_id = 'policy-anniversary' "
            # The journey's own call, not the retry or call-back an agent's outcome opens later.
            "AND k.parent_task_id IS NULL"
        ).fetchall()
        assert calls
        for created, thanked, tz in calls:
            day = _local(thanked, tz).date()
            assert _local(created, tz) == datetime.combine(next_working_day(day), wall_time(10, 0), ZoneInfo(tz))
        assert any(_local(thanked, tz).date() != next_working_day(_local(thanked, tz).date() - timedelta(days=1))
                   for _, thanked, tz in calls), "no anniversary on a day off: the wait never crossed one"
        reminders = db.execute(
            "SELECT t.planned_for, p.premium_due_date, c.timezone, e.state, e.step_id, e.next_at FROM touch t "
            "JOIN customer c ON c.id = t.customer_id "
            "JOIN policy p ON t.occurrence = 'policy-' || p.id || '-premium_due_date-' || p.premium_due_date "
            "JOIN enrollment e ON e.customer_id = t.customer_id AND e.journey_id = t.journey_id "
            "AND e.occurrence = t.occurrence WHERE t.journey_id = 'premium-due-reminder' AND t.step_id = 'due_soon'"
        ).fetchall()
        assert reminders
        for planned, due, tz, state, step, next_at in reminders:
            due_day = date.fromisoformat(due)
            assert _local(planned, tz) == datetime.combine(due_day - timedelta(days=7), wall_time(10, 0), ZoneInfo(tz))
            if state == "waiting":
                assert (step, _local(next_at, tz)) == (
                    "until_due_day_ends", datetime.combine(due_day, wall_time(20, 0), ZoneInfo(tz)))
        sent = dict(db.execute("SELECT channel, count(*) FROM touch WHERE sent_at IS NOT NULL "
                               "AND channel IN ('webhook', 'push') GROUP BY channel").fetchall())
        assert sent.get("push", 0) > 0 and sent.get("webhook", 0) > 0
        # Every call is the CRM case journey's webhook step.
        assert db.execute("SELECT count(*) FROM touch WHERE channel = 'webhook' AND journey_id = 'claim-crm-case' "
                          "AND step_id = 'open_case' AND sent_at IS NOT NULL").fetchone()[0] == sent["webhook"]


def test_no_unmasked_phone_number_in_output_or_logs(demo: DemoRun) -> None:
    with sqlite3.connect(demo.out / "demo.db") as db:
        phones = [row[0] for row in db.execute("SELECT phone FROM customer WHERE phone IS NOT NULL LIMIT 5")]
        emails = [row[0] for row in db.execute("SELECT email FROM customer WHERE email IS NOT NULL")]
        openids = [row[0] for row in db.execute("SELECT wechat_openid FROM customer WHERE wechat_openid IS NOT NULL")]
    # The pattern does find the book's numbers, so finding none below means something.
    assert phones and all(MOBILE.search(p) for p in phones)
    texts = {"stdout": demo.stdout, "stderr": demo.stderr}
    for path in demo.out.rglob("*.log"):
        texts[str(path.relative_to(demo.out))] = path.read_text(encoding="utf-8", errors="replace")
    assert "demo.log" in texts and texts["demo.log"].strip()
    for name, text in texts.items():
        found = MOBILE.findall(text)
        assert not found, f"unmasked mobile number(s) in {name}: {len(found)}"
        assert not [e for e in emails if e in text], f"unmasked e-mail address(es) in {name}"
        assert not [o for o in openids if o in text], f"WeChat openid(s) in {name}"


def test_the_demo_logs_no_error_and_renders_every_message(demo: DemoRun) -> None:
    """The README's first command shows what a configured production does: no ERROR lines, and no
    message failing to render. Before, the demo ran without JOURNEYS_SECRET_KEY (every e-mail whose
    template carries an unsubscribe link failed to render, with an ERROR about the key), and English
    SMS to customers named in Chinese characters went over their max_segments and were not sent."""
    log = (demo.out / "demo.log").read_text(encoding="utf-8")
    for name, text in (("stdout", demo.stdout), ("stderr", demo.stderr), ("demo.log", log)):
        assert not re.search(r"\bERROR\b", text), f"{name}: " + "\n".join(
            line for line in text.splitlines() if "ERROR" in line)[:2000]
    with sqlite3.connect(demo.out / "demo.db") as db:
        unrendered = db.execute("SELECT count(*) FROM touch WHERE error_reason LIKE 'render:%'").fetchone()[0]
        english_sms = db.execute("SELECT count(*) FROM touch t JOIN customer c ON c.id = t.customer_id "
                                 "WHERE t.channel = 'sms' AND c.locale = 'en' AND t.sent_at IS NOT NULL").fetchone()[0]
    assert unrendered == 0
    assert english_sms > 0
    key = demo.out / "unsubscribe-secret"
    assert key.stat().st_mode & 0o077 == 0 and len(key.read_text(encoding="utf-8")) >= 32


def test_every_long_step_is_announced(demo: DemoRun) -> None:
    """Each step that can take long says so when it starts (and, in a pipe, every few seconds while it
    lasts), so a slow machine never looks hung; the report says when it is done."""
    for step in ("seeding 300 customers", "starting Prefect's local engine", "Prefect's local engine is up",
                 "building the report", "report built"):
        assert re.search(rf"^  {re.escape(step)}", demo.stdout, re.M), f"{step!r} not announced"


def test_demo_completes_on_a_busy_machine(tmp_path: Path, spawn: Spawned,
                                          busy_machine: Callable[[int], None]) -> None:
    """Two CPU-bound processes on the machine (two cores here): Prefect's local engine still starts, the
    month runs and the report is built. The busy processes end with the test, whatever happens."""
    busy_machine(2)
    run = _run_demo(spawn, tmp_path, "--customers", "200", "--days", "3", "--seed", "5", "--start", "2026-03-01",
                    timeout=1800)
    assert re.search(r"^  Prefect's local engine is up", run.stdout, re.M)
    assert len(re.findall(r"^\s*day\s+\d+/3 2026-03-0\d", run.stdout, re.M)) == 3
    assert run.summary["total"]["planned"] > 0 and {row["tier"] for row in run.summary["tiers"]} >= set(TIERS)


def test_sigterm_ends_the_demo_and_its_prefect_server(tmp_path: Path, spawn: Spawned) -> None:
    proc = spawn([*_journeys_command(), "demo", "--customers", "50", "--days", "30", "--out", "out"], cwd=tmp_path,
                 env=_demo_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    seen = []
    deadline = time.monotonic() + 900
    while not any(line.startswith("  Prefect's local engine is up") for line in seen):
        assert proc.poll() is None, "".join(seen)
        assert time.monotonic() < deadline, "".join(seen)
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            continue
    proc.send_signal(signal.SIGTERM)  # the demo only, not its process group
    proc.wait(timeout=120)
    assert proc.returncode != 0
    # The server it started, a child process of its own, was stopped on the way out.
    assert spawn.left_running() == []


def test_the_demo_folder_is_where_git_ignores_it(project_root: Path) -> None:
    """The demo's database, log, Prefect home and stand-in certificate live under var/demo by default,
    which git ignores: nothing a run leaves can be taken for source."""
    from engine.demo.environment import DB_NAME, DEFAULT_OUT, LOG_NAME, PREFECT_DIR

    if not (project_root / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [str(DEFAULT_OUT / name) for name in (DB_NAME, LOG_NAME, "summary.json", "smtp-standin-ca.pem",
                                                    f"{PREFECT_DIR}/prefect.db", "reach_by_tier.png")]
    checked = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=project_root, capture_output=True,
                             text=True, check=False)
    assert sorted(checked.stdout.split()) == sorted(paths)
