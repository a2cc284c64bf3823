"""The planner over a real store (SQLite file and PostgreSQL) with its own journey files."""

from __future__ import annotations

import json
import threading
import time
from datetime import date, datetime

import pytest
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language.conditions import epoch_seconds, evaluate
from engine.language.journey_model import Condition
from engine.planning.planner import plan
from engine.planning.rules import evaluate_many
from store.db import get_engine
from store.models import Claim, Enrollment, KeyValue, Policy
from tests.plan_support import Book, send_journey, utc

WEEKLY = send_journey("weekly", "Weekly push", '{schedule: {cron: "0 10 * * MON"}}', step="push",
                      channels="[wechat, sms]", category="marketing", priority=40, audience="{tiers: [silver]}")


def rows(book: Book) -> list[tuple[str, str, datetime, str]]:
    return [(t.key, t.channel, t.due_at, t.status) for t in book.touches()]


def test_weekly_cadence_in_local_time_idempotent_and_dry_run(book: Book) -> None:
    book.journey("weekly", WEEKLY)
    sh = book.customer()
    la = book.customer(timezone="America/Los_Angeles", consent_wechat=False)
    book.customer(tier="gold")

    dry = plan(utc(2027, 3, 2), utc(2027, 2, 28), dry_run=True, url=book.url)
    assert dry.planned == 2 and book.touches() == []

    first = plan(utc(2027, 3, 2), utc(2027, 2, 28), url=book.url)
    assert (first.touches_written, first.enrollments_written) == (2, 2)
    assert rows(book) == [
        (f"{sh}:weekly:push:2027-03-01T10:00", "wechat", utc(2027, 3, 1, 2), "planned"),
        (f"{la}:weekly:push:2027-03-01T10:00", "sms", utc(2027, 3, 1, 18), "planned"),
    ]
    again = plan(utc(2027, 3, 2), utc(2027, 2, 28), url=book.url)
    assert (again.planned, again.touches_written, again.enrollments_written) == (0, 0, 0)
    assert len(book.touches()) == 2
    with Session(get_engine(book.url)) as session:
        cursor = session.get(KeyValue, "plan:last_end")
        assert cursor is not None and cursor.value == {"end": "2027-03-02T00:00:00+00:00",
                                                       "now": "2027-03-02T00:00:00+00:00"}
    # No --from: continues from where the last plan ended.
    nxt = plan(utc(2027, 3, 9), url=book.url)
    assert (nxt.start, nxt.touches_written) == (utc(2027, 3, 2), 2)


def test_birthday_on_28_february_for_29_february_and_los_angeles(book: Book) -> None:
    book.journey("bday", send_journey("bday", "Birthday", '{date: {anchor: customer.birthday, at: "09:00"}}',
                                      step="greet", channels="[sms]",
                                      audience="{when: {field: customer.age, op: ge, value: 18}}"))
    leap = book.customer(birthday=date(1992, 2, 29))
    la = book.customer(birthday=date(1990, 3, 1), timezone="America/Los_Angeles")
    book.customer(birthday=date(2015, 2, 28))  # 11 years old: the condition keeps them out
    plan(utc(2027, 3, 2), utc(2027, 2, 27), url=book.url)
    assert rows(book) == [
        (f"{leap}:bday:greet:birthday-2027", "sms", utc(2027, 2, 28, 1), "planned"),
        (f"{la}:bday:greet:birthday-2027", "sms", utc(2027, 3, 1, 17), "planned"),
    ]


def test_renewal_reminder_then_callback_for_higher_tiers(book: Book) -> None:
    book.journey("renewal", """
        id: renewal
        name: Renewal
        category: service
        entry: {date: {anchor: policy.expiry_date, offset: -30d, at: "10:00"}}
        goal: {event: policy.renewed}
        steps:
          - id: remind
            send: {channels: [sms], template: msg}
          - id: wait
            wait_for: {event: policy.renewed, timeout: 14d, on_event: exit}
          - id: tier
            branch:
              cases:
                - when: {field: customer.tier, op: in, value: [diamond, platinum, gold]}
                  goto: call
              otherwise: exit
          - id: call
            task: {queue: renewal, due_within: 2d, priority: high}
    """)
    gold = book.customer(tier="gold")
    silver = book.customer(tier="silver")
    for n, cid in enumerate((gold, silver)):
        book.add(Policy(external_id=f"P{n}", customer_id=cid, product_line="motor", annual_premium=1200,
                        start_date=date(2026, 3, 31), expiry_date=date(2027, 3, 31)))
    plan(utc(2027, 3, 2), utc(2027, 2, 28), url=book.url)
    assert [(k, d) for k, _, d, _ in rows(book)] == [
        (f"{gold}:renewal:remind:policy-1-2027-03-31", utc(2027, 3, 1, 2)),
        (f"{silver}:renewal:remind:policy-2-2027-03-31", utc(2027, 3, 1, 2)),
    ]
    with Session(get_engine(book.url)) as session:
        waiting = session.exec(select(Enrollment).order_by(Enrollment.customer_id)).all()  # type: ignore[arg-type]
        assert [(e.state, e.step_id, e.next_at) for e in waiting] == [("waiting", "wait", utc(2027, 3, 15, 2))] * 2
    # Two weeks later the wait has timed out: gold gets a callback, silver leaves.
    result = plan(utc(2027, 3, 16), url=book.url)
    assert result.enrollments_advanced == 2
    [task] = book.tasks()
    assert (task.customer_id, task.queue, task.priority, task.due_at) == (gold, "renewal", 1, utc(2027, 3, 17, 2))
    with Session(get_engine(book.url)) as session:
        states = session.exec(
            select(Enrollment.state, Enrollment.exit_reason).order_by(col(Enrollment.customer_id))).all()
        assert list(states) == [("done", "completed"), ("done", "completed")]
    assert plan(utc(2027, 3, 16), utc(2027, 3, 1), url=book.url).tasks_written == 0


def test_claim_settled_plus_30_days_and_spring_festival(book: Book) -> None:
    book.journey("claim", send_journey("claim", "After claim",
                                       '{date: {anchor: claim.settled_at, offset: 30d, at: "10:00"}}',
                                       step="offer", channels="[wechat]",
                                       audience="{when: {field: claim.amount, op: lt, value: 5000}}"))
    book.journey("cny", send_journey("cny", "Spring Festival",
                                     '{date: {anchor: holiday, holidays: [spring_festival], at: "09:00"}}',
                                     step="pack", channels="[wechat]", category="marketing"))
    cid = book.customer()
    # Settled late on 6 Jan in Shanghai (still 5 Jan in UTC): the local date counts.
    book.add(Claim(external_id="CL1", customer_id=cid, filed_at=utc(2026, 12, 20), settled_at=utc(2027, 1, 5, 17),
                   amount=800.0, status="settled"))
    plan(utc(2027, 2, 7), utc(2027, 2, 4), url=book.url)
    assert [(k, d) for k, _, d, _ in rows(book)] == [
        (f"{cid}:claim:offer:claim-1", utc(2027, 2, 5, 2)),
        (f"{cid}:cny:pack:spring_festival-2027", utc(2027, 2, 6, 1)),
    ]


def test_quiet_hours_move_and_consent_drop_are_recorded(book: Book) -> None:
    book.journey("late", send_journey("late", "Late", '{schedule: {cron: "0 21 * * *"}}', step="s",
                                      channels="[wechat]"))
    ok = book.customer()
    no = book.customer(consent_wechat=False)
    plan(utc(2027, 3, 1, 13, 30), utc(2027, 3, 1), url=book.url)
    touches = {t.customer_id: t for t in book.touches()}
    assert (touches[ok].planned_for, touches[ok].due_at, touches[ok].status) == (
        utc(2027, 3, 1, 13), utc(2027, 3, 2, 0), "planned")
    assert (touches[no].status, touches[no].error_reason) == (
        "dropped", "no_channel: no consented, reachable channel among wechat")


def test_tasks_advisor_assignment_and_json_output(book: Book) -> None:
    from store.models import AppUser

    book.add(AppUser(id=7, username="adv", role="agent", password_hash="x", created_at=utc(2020, 1, 1)))
    book.journey("diamond", """
        id: diamond
        name: Diamond check-in
        category: service
        audience: {tiers: [diamond]}
        entry: {schedule: {cron: "0 10 1 * *"}}
        steps:
          - id: call
            task: {queue: diamond_advisor, due_within: 3d, priority: low, assign: advisor, script: call}
          - id: note
            send: {channels: [email], template: msg}
    """)
    cid = book.customer(tier="diamond", advisor_id=7, timezone="America/Los_Angeles")
    result = CliRunner().invoke(build_app(), ["plan", "--from", "2027-03-01T00:00:00+00:00",
                                              "--at", "2027-03-02T00:00:00+00:00", "--json", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    # Customers by external id: what ``journeys explain`` and ``journeys event emit`` take.
    assert lines == [
        {"customer": "C00001", "journey": "diamond", "step": "note", "channel": "email", "template": "msg",
         "due_at": "2027-03-01T10:00:00-08:00", "key": f"{cid}:diamond:note:2027-03-01T10:00",
         "category": "service", "urgent": False},
        {"customer": "C00001", "journey": "diamond", "step": "call", "channel": "task", "template": "call",
         # Planned at 02:00 on Tuesday in Shanghai, where the service centre is: from its 09:00
         # opening, three working days on the diamond_advisor queue's business clock.
         "due_at": "2027-03-04T17:00:00-08:00", "key": f"{cid}:diamond:call:2027-03-01T10:00",
         "category": "task", "urgent": False},
    ]
    explained = CliRunner().invoke(build_app(), ["explain", lines[0]["customer"], "--at", "2027-03-01T12:00", "--json"])
    assert explained.exit_code == 0, explained.output
    assert book.tasks() == []
    plan(utc(2027, 3, 2), utc(2027, 3, 1), url=book.url)
    [task] = book.tasks()
    assert (task.assignee_id, task.priority, task.script, task.due_at) == (7, 3, "call", utc(2027, 3, 5, 1))


def test_disabled_journey_runs_only_when_switched_on(sqlite_book: Book) -> None:
    book = sqlite_book
    book.journey("weekly", WEEKLY.replace("priority: 40", "priority: 40\nenabled: false"))
    book.customer()
    assert plan(utc(2027, 3, 2), utc(2027, 2, 28), dry_run=True, url=book.url).planned == 0
    book.add(KeyValue(key="journey_enabled:weekly", value={"enabled": True}, updated_at=utc(2027, 1, 1)))
    assert plan(utc(2027, 3, 2), utc(2027, 2, 28), dry_run=True, url=book.url).planned == 1


def test_update_step_and_split_are_stable(sqlite_book: Book) -> None:
    book = sqlite_book
    book.journey("ab", """
        id: ab
        name: AB
        category: marketing
        entry: {schedule: {cron: "0 10 * * MON"}}
        steps:
          - id: mark
            update: {field: customer.attributes.seen_ab, value: true}
          - id: split
            split:
              holdout: 50
              variants: [{name: a, percent: 50, goto: send}]
          - id: send
            send: {channels: [sms], template: msg}
    """)
    ids = [book.customer() for _ in range(20)]
    plan(utc(2027, 3, 2), utc(2027, 2, 28), url=book.url)
    with Session(get_engine(book.url)) as session:
        enrolled = session.exec(select(Enrollment.customer_id, Enrollment.split_branch)).all()
        from store.models import Customer

        marks = session.exec(select(Customer.attributes)).all()
    assert {m.get("seen_ab") for m in marks} == {True}
    sent = {t.customer_id for t in book.touches()}
    assert sent == {cid for cid, branch in enrolled if branch == "a"}
    assert 0 < len(sent) < len(ids)


CONDITIONS = [
    {"field": "customer.tier", "op": "in", "value": ["gold", "silver"]},
    {"not": {"field": "customer.last_nps", "op": "le", "value": 6}},
    {"any": [{"field": "customer.product_lines", "op": "contains", "value": "motor"},
             {"field": "customer.age", "op": "gt", "value": 60}]},
    {"not": {"all": [{"field": "customer.tier", "op": "not_in", "value": ["gold"]},
                     {"field": "customer.last_active_at", "op": "within_last", "value": "30d"}]}},
    {"field": "customer.birthday", "op": "lt", "value": "1990-01-01"},
    {"not": {"field": "customer.attributes.vip", "op": "exists"}},
]
FACTS = [
    {},
    {"customer.tier": "gold", "customer.last_nps": 3, "customer.product_lines": ["motor"], "customer.age": 30,
     "customer.last_active_at": utc(2027, 2, 20), "customer.birthday": date(1980, 5, 1)},
    {"customer.tier": "silver", "customer.last_nps": 9, "customer.product_lines": [], "customer.age": 70,
     "customer.last_active_at": utc(2026, 1, 1), "customer.birthday": date(1995, 5, 1),
     "customer.attributes.vip": True},
    {"customer.tier": "diamond", "customer.last_active_at": utc(2027, 2, 28)},
]


@pytest.mark.parametrize("raw", CONDITIONS)
def test_durable_rules_agree_with_the_reference_semantics(raw: dict[str, object]) -> None:
    cond = Condition.model_validate(raw)
    now = epoch_seconds(utc(2027, 3, 1))
    expected = [evaluate(cond, f, now) for f in FACTS]
    assert evaluate_many(cond, FACTS, [now] * len(FACTS)) == expected


def test_durable_rules_runs_no_background_threads() -> None:
    # Its stock host re-arms a threading.Timer per ruleset every 0.2 s; ours has none.
    cond = Condition.model_validate(CONDITIONS[0])
    evaluate_many(cond, FACTS, [epoch_seconds(utc(2027, 3, 1))] * len(FACTS))
    time.sleep(0.5)
    assert [t for t in threading.enumerate()
            if isinstance(t, threading.Timer) and t.function.__module__.startswith("durable")] == []


def test_reference_results_are_the_documented_ones() -> None:
    now = epoch_seconds(utc(2027, 3, 1))
    results = [[evaluate(Condition.model_validate(c), f, now) for f in FACTS] for c in CONDITIONS]
    assert results == [
        [False, True, True, False],
        [True, False, True, True],
        [False, True, True, False],
        [True, True, True, False],
        [False, True, False, False],
        [True, True, False, True],
    ]
