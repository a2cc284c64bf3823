"""Takes the agent desk's screenshots in this folder: inbox, a complaint task and the supervisor desk,
at 1280 px (``desk-*-desktop.png``) and at 390 px (``desk-*-phone.png``), in Chinese.

    .venv/bin/python docs/screenshots/capture.py [--out docs/screenshots]

Builds a throw-away book (2,000 synthetic customers, as ``journeys seed`` makes them), a gold-callback
team with its supervisor, a complaints agent, a few hundred tasks in the pool, a fortnight of
closed tasks for the SLA chart, and complaint, negative-survey and small-claim tasks made by the
real event path (so each task page shows why it exists and its call script). Serves the console
under uvicorn and photographs it in headless Chromium (``JOURNEYS_CHROMIUM`` or ``chromium``;
a CJK font such as fonts-noto-cjk must be installed).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PASSWORD = "screenshot-only-1"
SIZES: dict[str, Any] = {"desktop": {"width": 1280, "height": 1100}, "phone": {"width": 390, "height": 1500}}


def build(url: str) -> dict[str, int]:
    from sqlmodel import col, select

    from console.assignment import run_desk
    from console.auth import CurrentUser, create_user
    from console.events_bridge import emit
    from engine.demo.seeding import seed_book
    from store.clock import utcnow
    from store.db import session_scope
    from store.migrate import upgrade
    from store.models import AgentTask, AppUser, Customer

    upgrade(url)
    seed_book(url, 2000, seed=11)
    now = utcnow()
    rng = random.Random(5)
    with session_scope(url) as s:
        people = [
            ("lina", "李娜", "agent", "gold_callback", ["lang:zh-CN", "product:health"]),
            ("liuyang", "刘洋", "agent", "gold_callback", ["lang:zh-CN", "lang:en"]),
            ("zhouting", "周婷", "agent", "gold_callback", ["lang:zh-CN", "licence:health"]),
            ("wangqiang", "王强", "agent", "complaints", ["lang:zh-CN", "lang:en"]),
            ("zhaomin", "赵敏", "supervisor", "gold_callback", []),
        ]
        users: dict[str, int] = {}
        for username, name, role, team, skills in people:
            row = create_user(s, username, PASSWORD, role, display_name=name, team=team, locale="zh-CN")
            row.skills = skills
            s.add(row)
            assert row.id is not None
            users[username] = row.id
        customers = [c for c in s.exec(select(Customer.id).where(col(Customer.tier).in_(("gold", "platinum")))
                                       .order_by(col(Customer.id))).all() if c is not None]
        for i in range(320):
            # The gold-callback pool: monthly callbacks spread over the week, a few already late.
            due = now + timedelta(minutes=rng.randint(-180, 7 * 24 * 60))
            assignee = rng.choice([users["lina"], users["liuyang"], users["zhouting"]]) if i % 12 == 0 else None
            s.add(AgentTask(key=f"shot:gold:{i}", customer_id=customers[i % len(customers)],
                            journey_id="gold-monthly-callback", journey_version="shot", step_id="callback",
                            occurrence=f"{now:%Y-%m}", queue="gold_callback", priority=2,
                            script="gold_monthly_callback", assignee_id=assignee, status="open",
                            due_at=due, created_at=due - timedelta(days=7), warn_at=due - timedelta(hours=10)))
        for day in range(1, 14):
            # Two weeks of closed callbacks for the compliance chart: most in time, some late.
            for j in range(rng.randint(18, 34)):
                due = now - timedelta(days=day, hours=rng.randint(0, 8))
                late = rng.random() < (0.25 if day in (3, 4, 9) else 0.06)
                done = due + timedelta(hours=rng.randint(1, 6)) if late else due - timedelta(hours=rng.randint(1, 30))
                s.add(AgentTask(key=f"shot:done:{day}:{j}", customer_id=customers[(day * 40 + j) % len(customers)],
                                journey_id="gold-monthly-callback", journey_version="shot", step_id="callback",
                                occurrence=f"{now:%Y-%m}", queue="gold_callback", script=None,
                                assignee_id=rng.choice([users["lina"], users["liuyang"], users["zhouting"]]),
                                status="done", outcome_code="reached", due_at=due, created_at=due - timedelta(days=7),
                                claimed_at=done, completed_at=done, warn_at=due - timedelta(hours=20)))
        chinese = [e for e in s.exec(select(Customer.external_id).where(Customer.locale == "zh-CN")
                                     .order_by(col(Customer.id)).limit(6)).all()]
    words = "理赔材料两周前就交齐了，到现在没人联系我，电话 13912345678 一直打不通。"
    emit("complaint.filed", chinese[0], {"category": "claims", "severity": "high", "source": "hotline",
                                         "text": words}, event_id="shot:complaint:1", db_url=url)
    emit("complaint.filed", chinese[1], {"category": "service", "severity": "normal", "source": "app",
                                         "text": "APP 里改不了联系地址。"}, event_id="shot:complaint:2", db_url=url)
    emit("survey.answered", chinese[2], {"survey": "nps", "nps": 3, "comment": "回访电话总在上班时间打来。"},
         event_id="shot:nps:1", db_url=url)
    emit("claim.filed", chinese[3], {"claim_id": "SHOT-CLM-1", "amount": 1860.0, "product_line": "health"},
         event_id="shot:claim:1", db_url=url)
    run_desk(now, db_url=url)
    with session_scope(url) as s:
        complaint = s.exec(select(AgentTask.id).where(AgentTask.queue == "complaints")
                           .order_by(col(AgentTask.id))).first()
        # Two of lina's callbacks are close to their SLA, so the inbox shows its warning.
        mine = s.exec(select(AgentTask).where(AgentTask.assignee_id == users["lina"], AgentTask.status == "open")
                      .order_by(col(AgentTask.due_at))).all()
        for task in mine[:2]:
            task.warn_at = now - timedelta(minutes=5)
            s.add(task)
        wang = CurrentUser.of(s.exec(select(AppUser).where(AppUser.username == "wangqiang")).one())
    assert complaint is not None
    from console import tasks

    tasks.claim(wang, complaint, db_url=url)
    return {"complaint": complaint}


def serve(url: str) -> tuple[Any, str]:
    import uvicorn

    from console.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(url), host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def shoot(base: str, out: Path, info: dict[str, int]) -> list[Path]:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("JOURNEYS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    pages = [("inbox", "lina", "/inbox"), ("task", "wangqiang", f"/tasks/{info['complaint']}"),
             ("supervisor", "zhaomin", "/supervisor")]
    written: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            for width, viewport in SIZES.items():
                phone = width == "phone"
                for name, username, path in pages:
                    context = browser.new_context(base_url=base, viewport=viewport, device_scale_factor=1,
                                                  is_mobile=phone, has_touch=phone, locale="zh-CN")
                    page = context.new_page()
                    page.goto("/login")
                    page.fill("input[name=username]", username)
                    page.fill("input[name=password]", PASSWORD)
                    page.click("button[type=submit]")
                    page.wait_for_load_state()
                    page.goto(path)
                    target = out / f"desk-{name}-{width}.png"
                    page.screenshot(path=str(target))
                    written.append(target)
                    context.close()
        finally:
            browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    os.environ.setdefault("JOURNEYS_SECRET_KEY", "screenshots-only-key-0123456789")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'screens.db'}"
        os.environ["JOURNEYS_DATABASE_URL"] = url
        info = build(url)
        server, base = serve(url)
        try:
            for path in shoot(base, args.out, info):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        finally:
            server.should_exit = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
