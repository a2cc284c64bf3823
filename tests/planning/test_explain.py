"""explain: audience, each condition leaf with its actual value, delivery decisions and why."""

from __future__ import annotations

import json
from datetime import date

import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from engine.planning.explain import explain
from engine.planning.planner import plan
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
            task: {queue: gold, due_within: 2d}
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
