"""``journeys demo`` end to end: the real CLI in a subprocess, in a temporary directory, small numbers.

One run (300 customers, 7 days) is shared by the assertions below: it seeds, plans, dispatches to
the in-process stand-ins, replays receipts and replies, lets the agents work, and reports.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    workdir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JOURNEYS_", "PREFECT_", "TWILIO_", "WECHAT_", "SMTP_", "EMAIL_"))}
    env["JOURNEYS_LOG_LEVEL"] = "INFO"  # the terminal gets everything the product logs: all of it is checked
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [*_journeys_command(), "demo", "--customers", "300", "--days", "7", "--seed", "3", "--start", "2026-03-01",
         "--out", "out"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    out = workdir / "out"
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    yield DemoRun(out, proc.stdout, proc.stderr, summary)


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
    assert providers["duplicates"] == {"sms": {}, "wechat": {}, "email": {}}
    assert sum(providers["accepted"].values()) > 0


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
