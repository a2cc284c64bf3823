"""explain: audience, each condition leaf with its actual value, delivery decisions and why."""

from __future__ import annotations

import json
from datetime import date

import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from engine.planning.explain import explain, render
from engine.planning.plan_output import PlannedTask
from engine.planning.planner import local_iso, plan
from store.models import Claim, Policy
from tests.db_support import count
from tests.plan_support import Book, utc


@pytest.fixture
def book(sqlite_book: Book) -> Book:
    sqlite_book.journey("evening", """
        id: evening
        name: Evening push
        category: marketing
        priority: 60
        audience:
          tiers: [silver]
          when: {all: [{field: customer.age, op: ge, value: 30}, {field: customer.consent_sms, op: eq, value: true}]}
        entry: {schedule: {cron: "30 21 * * MON"}}
        steps:
          - id: push
            send: {channels: [wechat, sms], template: msg}
    """)
    sqlite_book.journey("gold", """
        id: gold
        name: Gold monthly
        category: service
        audience: {tiers: [gold]}
        entry: {schedule: {cron: "0 10 1 * *"}}
        steps:
          - id: call
            task: {queue: gold_callback, due_within: 2d}
    """)
    return sqlite_book


def test_explain_shows_conditions_moves_and_drops(book: Book) -> None:
    book.customer(external_id="X1", name="张三", birthday=date(1990, 6, 1), consent_wechat=False)
    plan(utc(2027, 3, 1, 14), utc(2027, 3, 1), url=book.url)  # stores the quiet-hour move
    report = explain("X1", utc(2027, 3, 1, 14), url=book.url)
    assert (report["name"], report["tier"], report["timezone"]) == ("张*", "silver", "Asia/Shanghai")
    evening, gold = report["journeys"]
    assert (evening["journey"], evening["in_audience"], evening["tier_ok"]) == ("evening", True, True)
    assert [(c["text"], c["actual"], c["passed"]) for c in evening["conditions"]] == [
        ("customer.age ge 30", 36, True), ("customer.consent_sms eq True", True, True)]
    assert evening["next_fire"] == "2027-03-08T21:30:00+08:00"
    assert (gold["journey"], gold["in_audience"], gold["tier_ok"]) == ("gold", False, False)
    [stored] = [t for t in report["touches"] if t["source"] == "store"]
    assert (stored["planned_for"], stored["due_at"], stored["rule"], stored["channel"]) == (
        "2027-03-01T21:30:00+08:00", "2027-03-02T08:00:00+08:00", "quiet_hours", "sms")
    assert report["next"]["due_at"] == "2027-03-02T08:00:00+08:00"


def test_explain_cli_json_names_the_dropping_rule(book: Book) -> None:
    book.customer(external_id="X2", birthday=date(1980, 1, 1), consent_wechat=False, consent_sms=False)
    result = CliRunner().invoke(build_app(), ["explain", "X2", "--at", "2027-03-01T12:00:00+08:00", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    evening = report["journeys"][0]
    assert [c["passed"] for c in evening["conditions"]] == [True, False]
    assert evening["in_audience"] is False
    unknown = CliRunner().invoke(build_app(), ["explain", "nobody", "--at", "2027-03-01"])
    assert unknown.exit_code == 1


def test_plan_json_names_customers_as_explain_takes_them(book: Book) -> None:
    """``journeys plan --json | ... | journeys explain <customer>``: plan names customers by their
    external id (it printed the store's row id, which explain refused as unknown)."""
    book.customer(external_id="EXT-GOLD-7", tier="gold")
    book.customer(external_id="EXT-SILVER-8", birthday=date(1980, 1, 1), consent_wechat=False)
    runner = CliRunner()
    planned = runner.invoke(build_app(), ["plan", "--dry-run", "--json", "--from", "2027-02-28T12:00:00+08:00",
                                          "--at", "2027-03-08T23:00:00+08:00"])
    assert planned.exit_code == 0, planned.output
    lines = [json.loads(line) for line in planned.stdout.splitlines() if line.strip()]
    assert {(line["customer"], line["channel"]) for line in lines} == {("EXT-GOLD-7", "task"),
                                                                       ("EXT-SILVER-8", "sms")}
    for customer in sorted({line["customer"] for line in lines}):
        explained = runner.invoke(build_app(), ["explain", customer, "--at", "2027-03-01T09:00:00+08:00", "--json"])
        assert explained.exit_code == 0, explained.output
        assert json.loads(explained.stdout)["customer"] == customer


def test_explain_judges_policy_conditions_per_policy(sqlite_book: Book) -> None:
    """A customer with two active policies: each policy's verdict with its own values (the
    conditions were judged once for the customer, ``actual None``)."""
    sqlite_book.journey("renewal", """
        id: renewal
        name: Health renewal
        category: service
        audience:
          when: {all: [{field: policy.status, op: eq, value: active},
                       {field: policy.product_line, op: eq, value: health}]}
        entry: {date: {anchor: policy.expiry_date, offset: -30d, at: "10:00"}}
        steps:
          - id: remind
            send: {channels: [sms], template: msg}
    """)
    cid = sqlite_book.customer(external_id="TWO-POLICIES")
    sqlite_book.add(
        Policy(external_id="P-HEALTH", customer_id=cid, product_line="health", annual_premium=1200.0,
               start_date=date(2026, 5, 1), expiry_date=date(2027, 5, 1), status="active"),
        Policy(external_id="P-MOTOR", customer_id=cid, product_line="motor", annual_premium=3000.0,
               start_date=date(2026, 4, 1), expiry_date=date(2027, 4, 1), status="active"))
    report = explain("TWO-POLICIES", utc(2027, 3, 1, 4), url=sqlite_book.url)
    [renewal] = report["journeys"]
    assert [(p["policy"], p["holds"]) for p in renewal["policies"]] == [("P-MOTOR", False), ("P-HEALTH", True)]
    assert [(c["field"], c["actual"], c["passed"]) for c in renewal["policies"][0]["conditions"]] == [
        ("policy.status", "active", True), ("policy.product_line", "motor", False)]
    assert all(leaf["actual"] is not None for leaf in renewal["conditions"])
    assert renewal["conditions_hold"] is True and renewal["in_audience"] is True
    # The next fire is the one policy the audience takes: 30 days before P-HEALTH expires.
    assert renewal["next_fire"] == "2027-04-01T10:00:00+08:00"


def test_explain_judges_claim_conditions_per_claim(sqlite_book: Book) -> None:
    sqlite_book.journey("small", """
        id: small
        name: Small claim follow-up
        category: service
        audience:
          when: {all: [{field: claim.amount, op: lt, value: 5000}, {field: claim.product_line, op: eq, value: health}]}
        entry: {date: {anchor: claim.settled_at, offset: 30d, at: "10:00"}}
        steps:
          - id: offer
            send: {channels: [sms], template: msg}
    """)
    cid = sqlite_book.customer(external_id="TWO-CLAIMS")
    sqlite_book.add(
        Claim(external_id="CL-SMALL", customer_id=cid, product_line="health", amount=800.0, status="settled",
              filed_at=utc(2027, 1, 5), settled_at=utc(2027, 2, 1)),
        Claim(external_id="CL-BIG", customer_id=cid, product_line="health", amount=80_000.0, status="settled",
              filed_at=utc(2027, 1, 9), settled_at=utc(2027, 2, 3)))
    report = explain("TWO-CLAIMS", utc(2027, 3, 1, 4), url=sqlite_book.url)
    [small] = report["journeys"]
    assert [(c["claim"], c["holds"]) for c in small["claims"]] == [("CL-SMALL", True), ("CL-BIG", False)]
    # The claim's own product line (no policy imported with it) is what the condition reads.
    assert [leaf["actual"] for leaf in small["claims"][0]["conditions"]] == [800.0, "health"]


def test_explain_shows_the_next_scheduled_task_of_a_task_journey(book: Book) -> None:
    book.customer(external_id="G1", tier="gold")
    report = explain("G1", utc(2027, 3, 10, 4), url=book.url)
    gold = next(j for j in report["journeys"] if j["journey"] == "gold")
    # Nothing open yet: the task the next entry creates, on 1 April at 10:00, due two working days
    # later on gold_callback's business clock (Friday 2nd, then Tuesday 6th: a weekend and Qingming between).
    assert gold["next_task"] == {"journey": "gold", "step": "call", "queue": "gold_callback",
                                 "at": "2027-04-01T10:00:00+08:00", "due_at": "2027-04-06T10:00:00+08:00",
                                 "source": "next entry"}
    plan(utc(2027, 4, 1, 3), utc(2027, 3, 31), url=book.url)
    after = explain("G1", utc(2027, 4, 1, 4), url=book.url)
    gold = next(j for j in after["journeys"] if j["journey"] == "gold")
    assert (gold["next_task"]["queue"], gold["next_task"]["due_at"], gold["next_task"]["source"]) == (
        "gold_callback", "2027-04-06T10:00:00+08:00", "store (open)")
    assert gold["next_task"]["due_at"] in render_text(after)


def render_text(report: dict[str, object]) -> str:
    from io import StringIO

    from rich.console import Console

    from engine.planning.explain import render

    buffer = StringIO()
    render(report, Console(file=buffer, width=400))
    return buffer.getvalue()


def test_explain_says_in_words_that_a_customer_has_no_tier(book: Book) -> None:
    book.customer(external_id="NT1", tier=None)  # and no birthday: no age
    book.customer(external_id="S1", birthday=date(1980, 1, 1))
    without = CliRunner().invoke(build_app(), ["explain", "NT1", "--at", "2027-03-01T12:00:00+08:00"])
    assert without.exit_code == 0, without.output
    assert "None" not in without.stdout
    assert " · no tier · " in without.stdout.splitlines()[0]
    shown = _rendered(explain("NT1", utc(2027, 3, 1, 4), url=book.url))
    assert "None" not in shown
    assert "no tier, not in silver" in shown and "customer.age ge 30 (no value)" in shown
    silver = _rendered(explain("S1", utc(2027, 3, 1, 4), url=book.url))
    assert " · tier silver · " in silver and "tier silver, in silver" in silver and "(actual 47)" in silver


def _rendered(report: dict[str, object]) -> str:
    from io import StringIO

    from rich.console import Console

    text = StringIO()
    render(report, Console(file=text, width=300, highlight=False))
    return text.getvalue()


def test_explain_and_simulate_answer_with_the_files_but_store_no_version(book: Book) -> None:
    """README ("Review before going live"): they are dry runs; a version lands when the planner runs."""
    from sqlalchemy import MetaData

    from engine.planning.simulate import simulate
    from tests.db_support import connected

    book.customer(external_id="V1", birthday=date(1980, 1, 1))

    def table_counts() -> dict[str, int]:
        with connected(book.url) as conn:
            meta = MetaData()
            meta.reflect(conn)
            return {name: count(book.url, table) for name, table in meta.tables.items()}

    before = table_counts()
    assert before["journey_version"] == 0
    report = explain("V1", utc(2027, 3, 1, 4), url=book.url)
    assert [j["journey"] for j in report["journeys"]] == ["evening", "gold"]  # the files, as if landed
    assert simulate(utc(2027, 3, 1), utc(2027, 3, 8), url=book.url).touches
    assert table_counts() == before  # nothing written anywhere
    plan(utc(2027, 3, 1, 14), utc(2027, 3, 1), url=book.url)
    assert table_counts()["journey_version"] > 0  # the planner lands them (journeys, templates, settings)


def test_explain_in_a_pipe_shows_every_journey_id_and_condition_whole(sqlite_book: Book) -> None:
    """Piped or redirected, Rich laid the tables out for 80 columns and cut ids and conditions to
    '…'; where no screen sets the width, every value is shown whole."""
    long_id = "silver-weekly-push-for-customers-with-motor-and-health-policies"
    sqlite_book.journey(long_id, f"""
        id: {long_id}
        name: Long
        category: service
        audience:
          tiers: [silver]
          when:
            all:
              - {{field: customer.age, op: ge, value: 30}}
              - {{field: customer.consent_sms, op: eq, value: true}}
        entry: {{schedule: {{cron: "30 21 * * MON"}}}}
        steps:
          - id: push
            send: {{channels: [sms], template: msg}}
    """)
    sqlite_book.customer(external_id="P1", birthday=date(1980, 1, 1))
    shown = CliRunner().invoke(build_app(), ["explain", "P1", "--at", "2027-03-01T12:00:00+08:00"])
    assert shown.exit_code == 0, shown.output
    assert long_id in shown.stdout and "customer.consent_sms eq True" in shown.stdout
    assert "…" not in shown.stdout


def test_explain_names_the_birthday_fire_the_planner_plans(sqlite_book: Book) -> None:
    """A birthday entry whose journey has no condition on the birthday: explain said no next fire
    ('-') and no next task, though the planner enters the customer 30 days before it."""
    sqlite_book.journey("health-plan", """
        id: health-plan
        name: 健康计划 / Health plan
        category: service
        entry: {date: {anchor: customer.birthday, offset: -30d, at: "10:00"}}
        steps:
          - id: call
            task: {queue: gold_callback, due_within: 2d}
    """)
    sqlite_book.customer(external_id="B1", tier="gold", birthday=date(1990, 4, 20))
    report = explain("B1", utc(2027, 3, 10, 4), url=sqlite_book.url)
    [journey] = report["journeys"]
    assert journey["next_fire"] == "2027-03-21T10:00:00+08:00"
    assert (journey["next_task"]["at"], journey["next_task"]["source"]) == ("2027-03-21T10:00:00+08:00", "next entry")
    tasks: list[PlannedTask] = []
    plan(utc(2027, 3, 22), utc(2027, 3, 10, 4), dry_run=True, url=sqlite_book.url,
         sink=lambda chunk: tasks.extend(chunk.tasks))
    assert [(t.step_id, local_iso(t.planned_for, t.timezone), local_iso(t.due_at, t.timezone)) for t in tasks] == [
        ("call", journey["next_task"]["at"], journey["next_task"]["due_at"])]


def test_explain_next_fire_keeps_the_re_entry_rule_the_planner_keeps(sqlite_book: Book) -> None:
    """A daily callback a customer may enter once ever, and one at least 3 days apart: after the first
    entry explain said the next fire was the next day for both, which the planner never enters."""
    for journey_id, reentry in (("once", "{allowed: false}"), ("gap", "{allowed: true, after: 3d}")):
        sqlite_book.journey(journey_id, f"""
            id: {journey_id}
            name: 回访 / Callback
            category: service
            entry: {{schedule: {{cron: "0 10 * * *"}}}}
            reentry: {reentry}
            steps:
              - id: call
                task: {{queue: gold_callback, due_within: 1d}}
        """)
    sqlite_book.customer(external_id="R1", tier="gold")
    plan(utc(2027, 3, 1, 3), utc(2027, 3, 1), url=sqlite_book.url)  # both entered on 1 March at 10:00
    report = explain("R1", utc(2027, 3, 1, 4), url=sqlite_book.url)
    fires = {j["journey"]: j["next_fire"] for j in report["journeys"]}
    assert fires == {"once": None, "gap": "2027-03-04T10:00:00+08:00"}
    tasks: list[PlannedTask] = []
    plan(utc(2027, 3, 6), utc(2027, 3, 1, 4), dry_run=True, url=sqlite_book.url,
         sink=lambda chunk: tasks.extend(chunk.tasks))
    assert [(t.journey_id, local_iso(t.planned_for, t.timezone)) for t in tasks] == [("gap", fires["gap"])]
