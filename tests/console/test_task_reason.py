"""Every task page says why the task exists and shows its call script, rendered with the task's event.

Event-entry journeys' tasks (complaint, negative survey, small claim, churn, tier change) carry
the triggering event in their occurrence (``event-<id>``); the scripts read it (``event.data``).
Before, the console rendered scripts without the event: complaint, survey and claim tasks had
no script and no reason, and only a warning in the log said so.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from console import tasks
from console.events_bridge import emit
from engine.cli import build_app
from engine.language.journey_model import Journey
from engine.language.validation import validate
from store.db import session_scope
from store.models import AgentTask, Claim, Event, Policy
from tests.console.conftest import Seed, add_task, login, user

ROOT = Path(__file__).resolve().parents[2]

# What other systems send for each event type that starts a journey with a task.
EXAMPLES: dict[str, dict[str, Any]] = {
    "complaint.filed": {"category": "claims", "severity": "high", "source": "hotline",
                        "text": "理赔拖了两周没人管，请回电 13812345678"},
    "survey.answered": {"survey": "nps", "nps": 3, "comment": "等太久了，客服态度一般"},
    "claim.filed": {"claim_id": "CL-9", "amount": 1880.5, "product_line": "health"},
    "churn.warning": {"activity_drop": 0.62, "days_inactive": 41, "risk": 0.78},
    "tier.changed": {"from_tier": "platinum", "to_tier": "gold", "direction": "down", "score": 61.5},
}


def _task_of(url: str, event_id: str) -> AgentTask:
    with session_scope(url) as s:
        event = s.exec(select(Event).where(Event.external_id == event_id)).one()
        task = s.exec(select(AgentTask).where(AgentTask.occurrence == f"event-{event.id}")).one()
        s.expunge(task)
        return task


def test_complaint_task_page_shows_the_complaint_and_the_script(client: TestClient, seed: Seed, db_url: str) -> None:
    emit("complaint.filed", "C1", EXAMPLES["complaint.filed"], event_id="cmp-1", db_url=db_url)
    task = _task_of(db_url, "cmp-1")
    assert task.queue == "complaints" and task.script == "complaint_response"
    login(client, "ann")
    page = client.get(f"/tasks/{task.id}").text
    assert 'data-testid="reason-event"' in page and "Complaint filed" in page
    # The customer's words, masked like everything else an agent reads.
    assert "理赔拖了两周没人管，请回电 138****5678" in page and "13812345678" not in page
    assert "Claims" in page and "High" in page  # category and severity in words, not codes
    assert 'data-testid="script"' in page and 'data-testid="script-error"' not in page
    info = tasks.detail(user(db_url, "ann"), task.id or 0, db_url=db_url)
    assert info.script is not None and "理赔拖了两周没人管" in info.script and "13812345678" not in info.script
    assert info.script_error is None


def test_negative_survey_and_small_claim_tasks_say_why(db_url: str, seed: Seed) -> None:
    emit("survey.answered", "C3", EXAMPLES["survey.answered"], event_id="nps-1", db_url=db_url)
    with session_scope(db_url) as s:
        policy = s.exec(select(Policy).where(Policy.external_id == "P1")).one()
        s.add(Claim(external_id="CL-9", customer_id=seed.customers["C1"], policy_id=policy.id,
                    filed_at=seed.now, amount=1880.5))
    emit("claim.filed", "C1", EXAMPLES["claim.filed"], event_id="clm-1", db_url=db_url)
    ann = user(db_url, "ann")

    survey = tasks.detail(ann, _task_of(db_url, "nps-1").id or 0, db_url=db_url)
    assert survey.task.queue == "service_recovery" and survey.reason is not None
    items = {i.label: i.value for i in survey.reason.items}
    assert items["nps"] == 3 and items["comment"] == "等太久了，客服态度一般"
    assert survey.script is not None and "NPS 3" in survey.script and "等太久了" in survey.script

    claim = tasks.detail(ann, _task_of(db_url, "clm-1").id or 0, db_url=db_url)
    assert claim.task.queue == "claims_fast_track" and claim.reason is not None
    items = {i.label: i.value for i in claim.reason.items}
    assert items["amount"] == 1880.5 and items["product_line"] == "health" and items["claim_status"] == "filed"
    assert claim.script is not None and "1880.50" in claim.script


def test_a_claim_event_without_its_claim_row_still_gets_a_script(db_url: str, seed: Seed) -> None:
    # The claims system's event can come before the claim row is imported.
    emit("claim.filed", "C3", {"claim_id": "CL-404", "amount": 950.0, "product_line": "accident"},
         event_id="clm-2", db_url=db_url)
    info = tasks.detail(user(db_url, "ann"), _task_of(db_url, "clm-2").id or 0, db_url=db_url)
    assert info.script is not None and "950.00" in info.script


def test_the_reason_in_chinese_uses_words_for_codes(client: TestClient, seed: Seed, db_url: str) -> None:
    emit("complaint.filed", "C1", EXAMPLES["complaint.filed"], event_id="cmp-zh", db_url=db_url)
    task = _task_of(db_url, "cmp-zh")
    login(client, "bob")  # zh-CN
    page = client.get(f"/tasks/{task.id}").text
    # What a person reads, outside the script (whose text is the template author's: templates/).
    page = re.sub(r'<pre class="script".*?</pre>', "", page, flags=re.S)
    shown = re.sub(r"<[^>]+>", "|", page)
    for words in ("任务原因", "客户投诉", "|理赔|", "|高|", "客服热线", "投诉处理", "投诉24小时响应 · 处理投诉"):
        assert words in shown, words
    for code in ("complaint.filed", "claims", "hotline", "complaint-response", "complaints"):
        assert code not in shown, code


def test_policy_and_schedule_tasks_say_why(db_url: str, seed: Seed) -> None:
    with session_scope(db_url) as s:
        policy = s.exec(select(Policy).where(Policy.external_id == "P1")).one()
        renewal = AgentTask(key="t-renewal", customer_id=seed.customers["C1"], journey_id="renewal-reminder",
                            journey_version="v1", step_id="agent_callback",
                            occurrence=f"policy-{policy.id}-{policy.expiry_date.isoformat()}", queue="renewal",
                            script="renewal_callback", assignee_id=seed.users["ann"], status="open",
                            due_at=seed.now + timedelta(days=2), created_at=seed.now)
        s.add(renewal)
        s.flush()
        renewal_id = renewal.id or 0
    ann = user(db_url, "ann")
    info = tasks.detail(ann, renewal_id, db_url=db_url)
    assert info.reason is not None and info.reason.kind == "policy"
    assert {i.label: i.value for i in info.reason.items}["product_line"] == "health"
    assert info.script is not None
    scheduled = tasks.detail(ann, seed.tasks["ann_first"], db_url=db_url)
    assert scheduled.reason is not None and scheduled.reason.kind == "schedule"
    assert scheduled.reason.occurrence == "2026-11"


def _occurrence_for(s: Any, journey: Journey, seed: Seed, customer: str) -> str:
    entry = journey.entry
    if entry.event is not None:
        event = Event(external_id=f"ex-{journey.id}-{uuid.uuid4().hex[:8]}", type=entry.event.type,
                      customer_id=seed.customers[customer],
                      data=EXAMPLES.get(entry.event.type, {}), occurred_at=seed.now, received_at=seed.now)
        s.add(event)
        s.flush()
        return f"event-{event.id}"
    if entry.date is not None and entry.date.anchor.startswith("policy."):
        due = (seed.now + timedelta(days=7)).date()
        policy = Policy(external_id=f"P-{journey.id}-{uuid.uuid4().hex[:8]}", customer_id=seed.customers[customer],
                        product_line="life", annual_premium=5200.0, start_date=(seed.now - timedelta(days=335)).date(),
                        expiry_date=(seed.now + timedelta(days=30)).date(), premium_due_date=due,
                        grace_period_end=due + timedelta(days=60))
        s.add(policy)
        s.flush()
        if entry.date.anchor == "policy.expiry_date":
            return f"policy-{policy.id}-{policy.expiry_date.isoformat()}"
        # Any other policy date (engine.planning.anchored_entrants): policy-<id>-<field>-<date or year>.
        field = entry.date.anchor.removeprefix("policy.")
        return f"policy-{policy.id}-{field}-{getattr(policy, field).isoformat()}"
    if entry.date is not None and entry.date.anchor == "claim.settled_at":
        claim = Claim(external_id=f"CL-{journey.id}-{uuid.uuid4().hex[:8]}", customer_id=seed.customers[customer],
                      filed_at=seed.now,
                      settled_at=seed.now, amount=2300.0, status="settled")
        s.add(claim)
        s.flush()
        return f"claim-{claim.id}"
    return "2026-11"


def test_every_shipped_task_script_renders_for_its_task(db_url: str, seed: Seed) -> None:
    report = validate()
    assert report.ok, report.problems
    made: list[tuple[str, str, int]] = []
    with session_scope(db_url) as s:
        for loaded in report.journeys:
            for step in loaded.journey.steps:
                if step.task is None or not step.task.script:
                    continue
                customer = "C2" if step.task.queue == "diamond_advisor" else "C1"
                occurrence = _occurrence_for(s, loaded.journey, seed, customer)
                tid = add_task(s, f"all-{loaded.id}-{step.id}", seed.customers[customer], now=seed.now,
                               due_in=timedelta(hours=5), assignee_id=seed.users["ann"], queue=step.task.queue,
                               journey_id=loaded.id, script=step.task.script)
                s.get(AgentTask, tid).occurrence = occurrence  # type: ignore[union-attr]
                made.append((loaded.id, step.id, tid))
    assert len(made) >= 20
    ann = user(db_url, "ann")
    for journey_id, step_id, tid in made:
        info = tasks.detail(ann, tid, db_url=db_url)
        assert info.script and not info.script_error, (journey_id, step_id, info.script_error)


def test_a_script_that_cannot_be_rendered_is_shown_as_an_error(
    client: TestClient, seed: Seed, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    script_errors: list[logging.LogRecord],
) -> None:
    folder = tmp_path / "templates" / "needs_event"
    folder.mkdir(parents=True)
    (folder / "meta.yaml").write_text("description: reads the event\ncategory: service\n", encoding="utf-8")
    for locale in ("zh-CN", "en"):
        (folder / f"task.{locale}.j2").write_text("Complaint: {{ event.data.text }}\n", encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(tmp_path / "templates"))
    with session_scope(db_url) as s:
        tid = add_task(s, "t-broken", seed.customers["C1"], now=seed.now, due_in=timedelta(hours=2),
                       assignee_id=seed.users["ann"], script="needs_event")
    login(client, "ann")
    page = client.get(f"/tasks/{tid}").text
    assert 'data-testid="script-error"' in page and "event" in page
    assert [r.levelno for r in script_errors] == [logging.ERROR]
    assert "needs_event" in script_errors[0].getMessage()


def _journey(tmp_path: Path, entry: str) -> Path:
    folder = tmp_path / "journeys"
    folder.mkdir(exist_ok=True)
    path = folder / "callback.yaml"
    path.write_text(f"""id: reads-event
name: 读事件 / Reads the event
category: service
entry:
{entry}
steps:
  - id: call
    task:
      queue: complaints
      due_within: 24h
      script: complaint_response
""", encoding="utf-8")
    return path


def test_validate_rejects_a_script_whose_tasks_have_no_event(tmp_path: Path) -> None:
    scheduled = _journey(tmp_path, "  schedule:\n    cron: \"0 10 1 * *\"")
    report = validate([scheduled])
    problems = [p for p in report.problems if "call script" in p.message]
    assert problems, report.problems
    assert all(p.path.endswith(".j2") and p.line == 2 for p in problems)
    assert "'reads-event' step 'call'" in problems[0].message and "no triggering event" in problems[0].message
    on_event = _journey(tmp_path, "  event:\n    type: complaint.filed")
    assert not [p for p in validate([on_event]).problems if "call script" in p.message]


def test_preview_takes_an_event_a_policy_and_a_claim(db_url: str, seed: Seed) -> None:
    runner = CliRunner()
    event = '{"type": "complaint.filed", "data": {"category": "claims", "text": "请回电 13812345678 张三丰"}}'
    shown = runner.invoke(build_app(), ["preview", "complaint_response", "--customer", "C1", "--channel", "task",
                                        "--event", event, "--policy", "P1"])
    assert shown.exit_code == 0, shown.output
    assert "请回电 138****5678 张**" in shown.output and "13812345678" not in shown.output
    assert "张三丰" not in shown.output
    without = runner.invoke(build_app(), ["preview", "complaint_response", "--customer", "C1", "--channel", "task"])
    assert without.exit_code == 1 and "'event' is undefined" in without.output and "--event" in without.output
    claim = runner.invoke(build_app(), ["preview", "small_claim_acknowledgement", "--customer", "C1", "--channel",
                                        "task", "--event", '{"type": "claim.filed", "data": {"amount": 1880}}'])
    assert claim.exit_code == 0 and "1880.00" in claim.output, claim.output
    for bad in ("not json", "[1]", '{"data": {}}', '{"type": "x", "amount": 3}', '{"type": "x", "data": [1]}'):
        refused = runner.invoke(build_app(), ["preview", "complaint_response", "--customer", "C1", "--event", bad])
        assert refused.exit_code == 2 and "--event" in refused.output, (bad, refused.output)
    for option, value in (("--policy", "P404"), ("--claim", "CL404")):
        missing = runner.invoke(build_app(), ["preview", "complaint_response", "--customer", "C1", option, value])
        assert missing.exit_code == 1 and value in missing.output
