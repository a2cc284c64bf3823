"""The inbox shows an agent the queues of their team, with filters; outcomes are the queue's, after a claim.

Before, every agent saw every open task (advisor-only diamond tasks on top), with no filter,
all eight outcome buttons on every task (renewal intent on a complaint), live before the task
was claimed and recorded without a second look.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from console import tasks
from console.app import create_app
from console.queues import QueuesConfigError
from engine.language.validation import validate
from store.db import session_scope
from store.models import AgentTask, Customer
from tests.console.conftest import Seed, add_task, add_user, login, user


@pytest.fixture
def desk(db_url: str, seed: Seed) -> dict[str, int]:
    """Agents of three teams and an advisor; pool tasks in their queues and a diamond customer's."""
    add_user(db_url, "gina", "gold_callback")
    add_user(db_url, "carl", "complaints")
    amy = add_user(db_url, "amy", "advisors")
    made: dict[str, int] = {}
    with session_scope(db_url) as s:
        diamond = s.get(Customer, seed.customers["C2"])
        assert diamond is not None
        diamond.advisor_id = amy  # C2's dedicated advisor
        s.add(diamond)
        for i in range(3):
            made[f"gold{i}"] = add_task(s, f"gold-{i}", seed.customers["C1"], now=seed.now,
                                        due_in=timedelta(hours=10 + i), queue="gold_callback")
        made["complaint"] = add_task(s, "cmp-0", seed.customers["C3"], now=seed.now, due_in=timedelta(hours=20),
                                     queue="complaints", journey_id="complaint-response", script=None)
        made["late_complaint"] = add_task(s, "cmp-1", seed.customers["C1"], now=seed.now,
                                          due_in=-timedelta(hours=1), queue="complaints",
                                          journey_id="complaint-response", script=None)
        made["advisor"] = add_task(s, "dia-0", seed.customers["C2"], now=seed.now, due_in=timedelta(minutes=50),
                                   queue="diamond_advisor", journey_id="diamond-advisor-checkin")
        # A diamond customer's task in a queue everybody works: still only for their advisor.
        made["diamond_retention"] = add_task(s, "dia-1", seed.customers["C2"], now=seed.now,
                                             due_in=timedelta(minutes=30), queue="retention",
                                             journey_id="retention-boost-diamond")
    return made


def claimable(url: str, name: str, **filters: object) -> list[int]:
    box = tasks.inbox(user(url, name), filters=tasks.InboxFilter(**filters), db_url=url)  # type: ignore[arg-type]
    return [r.id for r in box.claimable]


def test_each_agent_sees_the_queues_of_their_team(db_url: str, seed: Seed, desk: dict[str, int]) -> None:
    gold = [desk["gold0"], desk["gold1"], desk["gold2"]]
    assert claimable(db_url, "gina") == [seed.tasks["free"], *gold]  # "callbacks": a queue no team works
    assert claimable(db_url, "carl") == [desk["late_complaint"], seed.tasks["free"], desk["complaint"]]
    # Only the advisor sees the diamond customer's tasks, the retention one too.
    assert claimable(db_url, "amy") == [desk["diamond_retention"], desk["advisor"], seed.tasks["free"]]
    for name in ("gina", "carl"):
        assert desk["advisor"] not in claimable(db_url, name)
        assert desk["diamond_retention"] not in claimable(db_url, name)
    # Out of reach is out of reach everywhere: the page and the claim answer as for no task.
    gina = user(db_url, "gina")
    for action in (lambda: tasks.detail(gina, desk["complaint"], db_url=db_url),
                   lambda: tasks.claim(gina, desk["diamond_retention"], db_url=db_url)):
        with pytest.raises(tasks.TaskNotFound):
            action()
    tasks.claim(user(db_url, "amy"), desk["diamond_retention"], db_url=db_url)


def test_agents_without_a_team_see_every_queue_but_the_advisors_customers(db_url: str, seed: Seed,
                                                                          desk: dict[str, int]) -> None:
    add_user(db_url, "nomad", None)
    seen = claimable(db_url, "nomad")
    assert desk["complaint"] in seen and desk["gold0"] in seen and desk["advisor"] not in seen


def test_filters_narrow_both_lists(db_url: str, seed: Seed, desk: dict[str, int]) -> None:
    assert claimable(db_url, "carl", queue="complaints") == [desk["late_complaint"], desk["complaint"]]
    assert claimable(db_url, "carl", overdue=True) == [desk["late_complaint"]]
    assert claimable(db_url, "gina", tier="silver") == [seed.tasks["free"]]  # C3 is silver
    assert claimable(db_url, "gina", customer="C1") == [desk["gold0"], desk["gold1"], desk["gold2"]]
    assert claimable(db_url, "gina", customer="NOBODY") == []
    with session_scope(db_url) as s:
        later = add_task(s, "gold-later", seed.customers["C1"], now=seed.now, due_in=timedelta(days=2),
                         queue="gold_callback")
    today = tasks.inbox(user(db_url, "gina"), now=seed.now, filters=tasks.InboxFilter(due_today=True),
                        db_url=db_url).claimable
    # "Today" is the desk's local day of seed.now (the machine's clock): late in the evening the task
    # due in an hour is tomorrow's, so which of the seeded tasks are today's is worked out, not assumed.
    end = tasks.end_of_today(seed.now)
    every = tasks.inbox(user(db_url, "gina"), now=seed.now, db_url=db_url).claimable
    assert [r.id for r in today] == [r.id for r in every if r.due_at < end]
    assert later not in [r.id for r in today] and later in [r.id for r in every]
    free = next(r for r in every if r.id == seed.tasks["free"])
    assert (free.id in [r.id for r in today]) == (free.due_at < end)
    mine = tasks.inbox(user(db_url, "ann"), filters=tasks.InboxFilter(customer="C3"), db_url=db_url)
    assert [r.id for r in mine.mine] == [seed.tasks["ann_second"]] and mine.mine_count == 1


def test_inbox_page_filters_and_keeps_them_across_pages(client: TestClient, seed: Seed, db_url: str,
                                                         desk: dict[str, int]) -> None:
    with session_scope(db_url) as s:
        for i in range(30):
            add_task(s, f"gold-p{i}", seed.customers["C1"], now=seed.now, due_in=timedelta(days=1, minutes=i),
                     queue="gold_callback")
    login(client, "gina")
    page = client.get("/inbox", params={"queue": "gold_callback", "customer": "C1"}).text
    assert 'value="gold_callback" selected' in page and 'value="C1"' in page
    assert "page=1" in page and "queue=gold_callback" in page.split('data-testid="next-page"')[0].rsplit("href", 1)[1]
    assert client.get("/inbox", params={"tier": "nonsense", "overdue": "x"}).status_code == 200
    assert client.get("/inbox", params={"customer": "x" * 65}).status_code == 422


def test_a_queue_no_desk_has_is_said_and_the_whole_inbox_shown(client: TestClient, seed: Seed, db_url: str,
                                                               desk: dict[str, int]) -> None:
    """A mistyped or stale link (?queue=gold_calback) used to show two empty lists and no word why."""
    gina = user(db_url, "gina")
    every = tasks.inbox(gina, db_url=db_url)
    typo = tasks.inbox(gina, filters=tasks.InboxFilter(queue="gold_calback"), db_url=db_url)
    assert typo.unknown_queue == "gold_calback" and not typo.filters.active
    assert [r.id for r in typo.claimable] == [r.id for r in every.claimable] != []
    login(client, "gina")
    page = client.get("/inbox", params={"queue": "<gold_calback>"}).text
    assert 'data-testid="unknown-queue"' in page and "“&lt;gold_calback&gt;”; showing all your queues" in page
    assert f'href="/tasks/{desk["gold0"]}"' in page
    # A queue no file declares that tasks are in (without config/queues.yaml any name is one) still narrows.
    with session_scope(db_url) as s:
        odd = add_task(s, "odd-0", seed.customers["C1"], now=seed.now, due_in=timedelta(hours=3), queue="pop_up")
    narrowed = tasks.inbox(user(db_url, "ann"), filters=tasks.InboxFilter(queue="pop_up"), db_url=db_url)
    assert narrowed.unknown_queue is None and narrowed.filters.queue == "pop_up"
    assert all(r.queue == "pop_up" for r in narrowed.claimable + narrowed.mine)
    assert odd not in [r.id for r in typo.claimable]
    login(client, "bob")  # zh-CN
    assert "没有名为“gold_calback”的队列" in client.get("/inbox", params={"queue": "gold_calback"}).text


def test_outcomes_are_the_queues_and_only_after_the_claim(client: TestClient, seed: Seed, db_url: str,
                                                          desk: dict[str, int]) -> None:
    carl = user(db_url, "carl")
    info = tasks.detail(carl, desk["complaint"], db_url=db_url)
    assert not info.can_complete and info.can_claim  # nothing to record before the call starts
    assert info.offered == ("reached", "no_answer", "wrong_number", "call_back", "resolved")
    with pytest.raises(tasks.TaskInvalid) as refused:
        tasks.complete(carl, desk["complaint"], "renewal_yes", db_url=db_url)
    assert refused.value.code == "outcome_not_offered"
    token = login(client, "carl")
    page = client.get(f"/tasks/{desk['complaint']}").text
    assert 'name="outcome"' not in page and 'data-testid="outcome-hint"' in page
    # The page refuses an outcome before the claim, whatever the form says.
    client.post(f"/tasks/{desk['complaint']}/complete", data={"csrf_token": token, "outcome": "no_answer"})
    with session_scope(db_url) as s:
        assert s.get(AgentTask, desk["complaint"]).status == "open"  # type: ignore[union-attr]
    client.post(f"/tasks/{desk['complaint']}/claim", data={"csrf_token": token})
    page = client.get(f"/tasks/{desk['complaint']}").text
    for code in info.offered:
        assert f'data-testid="outcome-{code}"' in page
    assert 'data-testid="outcome-renewal_yes"' not in page and 'data-testid="outcome-complaint_raised"' not in page
    # A closing outcome is asked once more; nothing is recorded until it is confirmed.
    asked = client.post(f"/tasks/{desk['complaint']}/complete",
                        data={"csrf_token": token, "outcome": "resolved", "notes": "refund agreed"})
    assert asked.status_code == 200 and 'data-testid="confirm"' in asked.text and "refund agreed" in asked.text
    with session_scope(db_url) as s:
        assert s.get(AgentTask, desk["complaint"]).status == "claimed"  # type: ignore[union-attr]
    done = client.post(f"/tasks/{desk['complaint']}/complete", follow_redirects=False,
                       data={"csrf_token": token, "outcome": "resolved", "notes": "refund agreed", "confirmed": "1"})
    assert done.status_code == 303
    with session_scope(db_url) as s:
        task = s.get(AgentTask, desk["complaint"])
        assert task is not None and task.status == "done" and task.outcome_code == "resolved"
        assert task.notes == "refund agreed"


def test_a_broken_queues_file_is_refused_at_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      db_url: str, console_env: None) -> None:
    config = tmp_path / "config"
    config.mkdir()
    for name in ("tiers.yaml", "delivery.yaml"):
        (config / name).write_text((Path(__file__).resolve().parents[2] / "config" / name).read_text("utf-8"),
                                   encoding="utf-8")
    (config / "queues.yaml").write_text(
        "queues:\n  complaints:\n    outcomes: [reached, maybe]\n    clock: sometimes\n"
        "task_types:\n  no-such-journey:\n    requires: [lang:fr]\n", encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    with pytest.raises(QueuesConfigError) as refused:
        create_app(db_url)
    shown = str(refused.value)
    assert "queues.yaml:3:" in shown and "unknown outcome 'maybe'" in shown
    assert "queues.yaml:4:" in shown and "queues.yaml:7:" in shown and "unknown skill 'lang:fr'" in shown
    report = validate()
    assert {p.line for p in report.problems if p.path.endswith("queues.yaml")} == {3, 4, 7}
    (config / "queues.yaml").write_text("task_types:\n  no-such-journey:\n    requires: [lang:en]\n", encoding="utf-8")
    [problem] = [p for p in validate().problems if p.path.endswith("queues.yaml")]
    assert problem.line == 2 and "unknown journey or step 'no-such-journey'" in problem.message


def test_the_rest_api_offers_the_queues_outcomes_and_the_sla_risk_like_the_pages(client: TestClient, seed: Seed,
                                                                                  db_url: str) -> None:
    now = seed.now
    with session_scope(db_url) as s:
        complaint = add_task(s, "api-cmp", seed.customers["C1"], now=now, due_in=timedelta(hours=2),
                             assignee_id=seed.users["ann"], queue="complaints", journey_id="complaint-response",
                             script=None, status="claimed")
        renewal = add_task(s, "api-ren", seed.customers["C3"], now=now, due_in=timedelta(hours=9),
                           assignee_id=seed.users["ann"], queue="renewal", journey_id="renewal-reminder",
                           script=None, status="claimed")
        risky = s.get(AgentTask, complaint)
        assert risky is not None
        risky.warn_at = now - timedelta(minutes=5)  # past its warning time, two hours before the breach
        s.add(risky)
    login(client, "ann")
    listed = {t["id"]: t for t in client.get("/api/tasks").json()}
    ann = user(db_url, "ann")
    for task_id in (complaint, renewal):
        page = tasks.detail(ann, task_id, db_url=db_url)
        shown = client.get(f"/tasks/{task_id}").text
        assert listed[task_id]["outcomes"] == list(page.offered)
        assert [code for code in listed[task_id]["outcomes"] if f'data-testid="outcome-{code}"' in shown] == \
            listed[task_id]["outcomes"]
        assert listed[task_id]["closing_outcomes"] == list(page.closing)
    assert "renewal_yes" in listed[renewal]["outcomes"] and "renewal_yes" not in listed[complaint]["outcomes"]
    inbox_page = client.get("/inbox").text
    assert listed[complaint]["at_risk"] and f'data-testid="at-risk-{complaint}"' in inbox_page
    assert not listed[renewal]["at_risk"] and f'data-testid="at-risk-{renewal}"' not in inbox_page
    assert listed[complaint]["warn_at"] is not None and 0 < listed[complaint]["seconds_left"] <= 2 * 3600
