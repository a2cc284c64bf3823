"""The supervisor desk: backlog per queue with SLA at risk, assigning from the pool and in bulk,
reassigning any open task of the team, per-agent load and SLA figures, and the compliance chart.

Before, the page showed no backlog, reassigned only overdue tasks inside one agent's list, could not
assign from the pool or in bulk, and had no SLA figures.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlmodel import col, select
from starlette.testclient import TestClient

from console import supervision, tasks
from store.db import session_scope
from store.models import AgentTask, AppUser, AuditLog
from tests.console.conftest import Seed, add_task, login, password_hash, user


def _gold(url: str, seed: Seed, n: int, prefix: str, due_in: timedelta) -> list[int]:
    with session_scope(url) as s:
        return [add_task(s, f"{prefix}-{i}", seed.customers["C1"], now=seed.now, due_in=due_in + timedelta(minutes=i),
                         queue="gold_callback", journey_id="gold-monthly-callback") for i in range(n)]


def test_backlog_per_queue_counts_the_pool_the_assigned_the_at_risk_and_the_overdue(db_url: str,
                                                                                    seed: Seed) -> None:
    waiting = _gold(db_url, seed, 5, "g", timedelta(hours=6))
    late = _gold(db_url, seed, 2, "late", -timedelta(hours=1))
    with session_scope(db_url) as s:
        risky = s.get(AgentTask, waiting[0])
        assert risky is not None
        risky.warn_at = seed.now - timedelta(minutes=5)  # past its warning time, not yet due
        s.get(AgentTask, late[0]).assignee_id = seed.users["bob"]  # type: ignore[union-attr]
    rows = {b.queue: b for b in supervision.backlog(user(db_url, "sue"), now=seed.now, db_url=db_url)}
    gold = rows["gold_callback"]
    assert (gold.pool, gold.assigned, gold.at_risk, gold.overdue) == (6, 1, 1, 2)
    assert gold.clock == "business" and gold.oldest_due == min(
        t.due_at for t in _tasks(db_url, late))
    # Most urgent first: the queue with overdue tasks leads.
    assert next(iter(rows)) == "gold_callback"


def _tasks(url: str, ids: list[int]) -> list[AgentTask]:
    with session_scope(url) as s:
        found = {t.id: t for t in s.exec(select(AgentTask).where(col(AgentTask.id).in_(ids))).all()}
        for t in found.values():
            s.expunge(t)
        return [found[i] for i in ids if i in found]


def test_bulk_assignment_from_the_pool_honours_team_and_skills(db_url: str, seed: Seed) -> None:
    pool = _gold(db_url, seed, 3, "g", timedelta(hours=6))
    with session_scope(db_url) as s:
        licensed = add_task(s, "health-1", seed.customers["C1"], now=seed.now, due_in=timedelta(days=1),
                            queue="health_booking", journey_id="claim-settled-health-consultation")
    sue = user(db_url, "sue")
    done = tasks.assign_many(sue, [*pool, licensed, seed.tasks["cara"], 999_999], seed.users["bob"], db_url=db_url)
    assert done.assigned == pool
    # Health consultations need a licence bob lacks; cara's task is team b's; 999999 is no task.
    assert done.refused == {"lacks_skills": 1, "forbidden": 2}
    assert {t.assignee_id for t in _tasks(db_url, pool)} == {seed.users["bob"]}
    with session_scope(db_url) as s:
        assert len(s.exec(select(AuditLog).where(AuditLog.action == "assign")).all()) == 3
        bob = s.get(AppUser, seed.users["bob"])
        assert bob is not None
        bob.skills = ["licence:health"]
    assert tasks.assign_many(sue, [licensed], seed.users["bob"], db_url=db_url).assigned == [licensed]
    # Nobody outside the team, whoever it is.
    refused = tasks.TaskInvalid
    try:
        tasks.assign_many(sue, pool, seed.users["cara"], db_url=db_url)
    except refused as exc:
        assert exc.code == "other_team"  # an active agent, of another team: said as one task's handover says it
    else:
        raise AssertionError("assigned to another team's agent")


def test_supervisor_reassigns_any_open_task_of_the_team_not_only_overdue_ones(db_url: str, seed: Seed) -> None:
    sue = user(db_url, "sue")
    rows, _ = supervision.worklist(sue, supervision.WorkFilter(), now=seed.now, db_url=db_url)
    ids = [r.id for r in rows]
    # ann's, bob's and the pool of the queues team a works; not cara's (team b).
    assert set(ids) == {seed.tasks["ann_first"], seed.tasks["ann_second"], seed.tasks["bob"], seed.tasks["free"]}
    tasks.reassign(sue, seed.tasks["ann_second"], seed.users["bob"], db_url=db_url)  # due in 5 h: not overdue
    tasks.reassign(sue, seed.tasks["free"], seed.users["ann"], db_url=db_url)  # straight from the pool
    assert [t.assignee_id for t in _tasks(db_url, [seed.tasks["free"], seed.tasks["ann_second"]])] == [
        seed.users["ann"], seed.users["bob"]]
    pool, _ = supervision.worklist(sue, supervision.WorkFilter(state="pool"), now=seed.now, db_url=db_url)
    assert pool == []


def test_agent_figures_and_compliance_by_day(db_url: str, seed: Seed) -> None:
    today = supervision.local_midnight(seed.now)
    now = today + timedelta(hours=12)  # noon in the display zone: "today" and "yesterday" are unambiguous
    with session_scope(db_url) as s:
        def closed(key: str, due: timedelta, done: timedelta, who: str = "ann") -> None:
            tid = add_task(s, key, seed.customers["C1"], now=now, due_in=due, assignee_id=seed.users[who])
            task = s.get(AgentTask, tid)
            assert task is not None
            task.status, task.completed_at, task.outcome_code = "done", now + done, "reached"
        # Yesterday (display zone): three tasks due; two closed in time, one still open and overdue.
        yesterday = today - timedelta(hours=12) - now
        closed("y1", yesterday, yesterday - timedelta(hours=1))
        closed("y2", yesterday, yesterday - timedelta(minutes=1))
        add_task(s, "y3", seed.customers["C1"], now=now, due_in=yesterday, assignee_id=seed.users["ann"])
        # Today, by ann: one in time, one late.
        closed("t1", timedelta(minutes=-10), timedelta(minutes=-20))
        closed("t2", timedelta(minutes=-30), timedelta(minutes=-5))
    sue = user(db_url, "sue")
    ann = {a.name: a for a in supervision.agent_figures(sue, now=now, db_url=db_url)}["Ann"]
    assert (ann.done_today, ann.met_today) == (2, 1) and ann.overdue >= 1
    assert ann.done_week >= 2 and ann.met_week >= 1
    days = supervision.compliance_by_day(sue, now=now, db_url=db_url)
    assert len(days) == supervision.CHART_DAYS and days[-1].day == today.date()
    by_day = {d.day: d for d in days}
    y = by_day[(today - timedelta(days=1)).date()]
    assert (y.due, y.met) == (3, 2)
    chart = supervision.chart(days)
    bar = next(b for b in chart.bars if b.day == y.day)
    assert bar.below_target and abs(bar.height - (chart.height - chart.top - chart.bottom) * 2 / 3) < 0.2


def test_supervisor_page_assigns_in_bulk_and_draws_the_chart_itself(client: TestClient, db_url: str,
                                                                   seed: Seed) -> None:
    pool = _gold(db_url, seed, 3, "g", timedelta(hours=6))
    with session_scope(db_url) as s:
        due = supervision.local_midnight(seed.now) - timedelta(hours=3) - seed.now  # yesterday evening
        tid = add_task(s, "y1", seed.customers["C1"], now=seed.now, due_in=due, assignee_id=seed.users["ann"])
        task = s.get(AgentTask, tid)
        assert task is not None
        task.status, task.completed_at = "done", task.due_at - timedelta(hours=1)
    token = login(client, "sue")
    page = client.get("/supervisor").text
    assert 'data-testid="backlog"' in page and 'data-queue="gold_callback"' in page
    chart = page.split('data-testid="sla-chart"', 1)[1].split("</section>", 1)[0]
    # Drawn by the server as inline SVG: one bar for yesterday (1 of 1 in time).
    assert chart.count("<svg") == 1 and chart.count("<rect") == 1 and 'data-due="1" data-met="1"' in chart
    assert not re.search(r"<(script|img|link)[^>]+(https?:)?//", page)  # nothing from elsewhere
    done = client.post("/supervisor/assign", follow_redirects=False, data={
        "csrf_token": token, "to_user_id": str(seed.users["bob"]), "task_ids": [str(i) for i in pool],
        "back": "/supervisor?state=pool"})
    assert done.status_code == 303 and done.headers["location"] == "/supervisor?state=pool"
    shown = client.get(done.headers["location"]).text
    assert "3 task(s) assigned." in shown
    assert {t.assignee_id for t in _tasks(db_url, pool)} == {seed.users["bob"]}
    nothing = client.post("/supervisor/assign", data={"csrf_token": token, "to_user_id": str(seed.users["bob"])})
    assert "Choose the tasks to assign." in nothing.text
    elsewhere = client.post("/supervisor/assign", follow_redirects=False, data={
        "csrf_token": token, "to_user_id": str(seed.users["bob"]), "task_ids": [str(pool[0])],
        "back": "https://elsewhere.example/"})
    assert elsewhere.headers["location"] == "/supervisor"
    assert client.get("/supervisor", params={"agent": str(seed.users["cara"])}).status_code == 403


def test_the_agents_table_names_each_agents_team_in_words(client: TestClient, db_url: str, seed: Seed) -> None:
    with session_scope(db_url) as s:
        for name, role, team in (("zoe", "supervisor", None), ("cai", "agent", "claims"), ("fei", "agent", None)):
            s.add(AppUser(username=name, display_name=name.capitalize(), role=role, team=team, locale="zh-CN",
                          password_hash=password_hash(), created_at=seed.now))
    login(client, "zoe")
    page = client.get("/supervisor").text
    cells = dict(re.findall(r'<td data-label="[^"]*">(\w+)</td>\s*<td[^>]*>[^<]*</td>\s*'
                            r'<td data-label="[^"]*" data-k="team">([^<]*)</td>', page))
    assert cells["Cai"] == "理赔" and cells["Fei"] == "所有队列"


def test_the_agents_table_says_to_do_not_the_verb_open_and_none_for_no_skills(client: TestClient, db_url: str,
                                                                                seed: Seed) -> None:
    """The count of an agent's tasks not yet claimed was headed "Open", the msgid of the rows' "Open" buttons too,
    so the Chinese desk read "打开 1" (open it) where it means "待处理 1"; an agent with no skills showed nothing."""
    with session_scope(db_url) as s:
        sue = s.exec(select(AppUser).where(AppUser.username == "sue")).one()
        sue.locale = "zh-CN"
        s.add(sue)
    login(client, "sue")
    page = client.get("/supervisor").text
    table = page.split('data-testid="team-load"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"<td data-label=\"待处理\" class=\"num\" data-k=\"open\">\d+</td>", table)
    assert "打开" not in table
    assert re.search(r"<td data-label=\"技能\">无</td>", table)


def test_an_agents_skills_are_listed_as_the_language_lists_them(client: TestClient, db_url: str,
                                                                 seed: Seed) -> None:
    """Skills were joined with ", " in Chinese too ("会说中文, 健康险产品"); Chinese lists with "、"."""
    with session_scope(db_url) as s:
        for name, locale, skills in (("sue", "zh-CN", None), ("ann", None, ["lang:zh-CN", "product:health"])):
            row = s.exec(select(AppUser).where(AppUser.username == name)).one()
            if locale:
                row.locale = locale
            if skills:
                row.skills = skills
            s.add(row)
    login(client, "sue")
    assert '<td data-label="技能">会说中文、健康险产品</td>' in client.get("/supervisor").text
