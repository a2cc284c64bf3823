"""The ops pages in real Chromium against a real uvicorn server, at desktop (1280 px) and phone (390 px) widths.

Each page is opened for a seeded book and its figures are checked against the database.
With JOURNEYS_SCREENSHOTS=1 the screenshots are written to docs/screenshots/ (how the README's
pictures are made); otherwise to the test's temporary folder, so a test run changes no file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.language.journey_registry import load_in_force
from engine.loop.reports import build_report
from engine.loop.tables import enrollment_t, outcome_t, task_t, touch_t
from store.db import session_scope
from store.models import KeyValue, Touch
from tests.console.conftest import PASSWORD, Seed, assert_fits
from tests.console.ops_seed import SPLIT_JOURNEY, count_by, seed_activity

pytestmark = pytest.mark.browser

playwright_sync = pytest.importorskip("playwright.sync_api")
ROOT = Path(__file__).resolve().parents[2]
WIDTHS = {"desktop": 1280, "phone": 390}


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return ROOT / "docs" / "screenshots" if os.environ.get("JOURNEYS_SCREENSHOTS") == "1" else tmp_path


@pytest.fixture
def book(seed: Seed, db_url: str) -> Seed:
    seed_activity(db_url, list(seed.customers.values()), seed.now)
    with session_scope(db_url) as s:
        s.add(KeyValue(key="journey_enabled:retention-boost-gold", value={"enabled": True}, updated_at=seed.now))
        load_in_force(s)  # publishes the versions, as the planner does: the list shows when each last changed
    return seed


@pytest.fixture(params=sorted(WIDTHS))
def ops_page(request: pytest.FixtureRequest, browser: Any, server: str, book: Seed) -> Iterator[tuple[Any, str]]:
    width = WIDTHS[request.param]
    context = browser.new_context(base_url=server, viewport={"width": width, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    yield page, request.param
    context.close()


def _no_page_scroll(page: Any) -> None:
    # Wide tables and the diagram scroll inside their own boxes; the page itself never scrolls sideways.
    assert_fits(page)


def test_journeys_list_shows_states_and_week_volumes(ops_page: tuple[Any, str], db_url: str, book: Seed,
                                                    shots: Path) -> None:
    page, size = ops_page
    expect = playwright_sync.expect
    page.goto("/ops/journeys")
    table = page.get_by_test_id("journeys")
    since = book.now - timedelta(days=7)
    with session_scope(db_url) as s:
        # Planned as the report counts it: a cancelled touch is not, one a rule dropped is (birthday-care's).
        touches = count_by(s, touch_t, "journey_id", touch_t.c.planned_for >= since, touch_t.c.status != "cancelled")
        tasks = count_by(s, task_t, "journey_id", task_t.c.created_at >= since)
    for journey_id in (SPLIT_JOURNEY, "complaint-response", "birthday-care", "renewal-reminder"):
        row = table.locator(f"tr[data-journey='{journey_id}']")
        expect(row.get_by_test_id("touches-7d")).to_have_text(str(touches.get(journey_id, 0)))
        expect(row.get_by_test_id("tasks-7d")).to_have_text(str(tasks.get(journey_id, 0)))
    expect(table.locator("tr[data-journey='retention-boost-gold'] [data-testid=state]")).to_have_text(
        "Switched on by dynamic adjustment")
    expect(table.locator("tr[data-journey='retention-boost-silver'] [data-testid=state]")).to_have_text("Off")
    expect(table.locator("tr[data-journey='birthday-care'] [data-testid=state]")).to_have_text("On")
    _no_page_scroll(page)
    page.screenshot(path=str(shots / f"ops-journeys-{size}.png"), full_page=size == "phone")


def test_journey_page_draws_the_flow_with_counts_from_the_database(ops_page: tuple[Any, str], db_url: str,
                                                                   book: Seed, shots: Path) -> None:
    page, size = ops_page
    expect = playwright_sync.expect
    page.goto(f"/ops/journeys/{SPLIT_JOURNEY}")
    diagram = page.get_by_test_id("diagram")
    for step in ("channel_test", "send_wechat_first", "send_email_first", "done", "(end)"):
        expect(diagram.locator(f"[data-step='{step}']")).to_have_count(1)
    expect(diagram.locator(".edge-holdout")).to_have_count(1)
    with session_scope(db_url) as s:
        for step in ("send_wechat_first", "send_email_first"):
            touches = s.execute(sa.select(touch_t).where(touch_t.c.journey_id == SPLIT_JOURNEY,
                                                         touch_t.c.step_id == step)).all()
            replied = s.execute(sa.select(sa.func.count(sa.distinct(outcome_t.c.touch_id))).where(
                outcome_t.c.kind == "replied", outcome_t.c.touch_id.in_([t.id for t in touches]))).scalar()
            row = page.get_by_test_id("step-counts").locator(f"tr[data-step='{step}']")
            expect(row.locator("[data-k=sent]")).to_have_text(str(len(touches)))
            expect(row.locator("[data-k=delivered]")).to_have_text(str(sum(t.status == "delivered" for t in touches)))
            expect(row.locator("[data-k=failed]")).to_have_text(str(sum(t.status == "failed" for t in touches)))
            expect(row.locator("[data-k=replied]")).to_have_text(str(replied))
            expect(diagram.locator(f"[data-step='{step}']")).to_contain_text(f"sent {len(touches)}")
        e = enrollment_t
        groups = count_by(s, e, "split_branch", e.c.journey_id == SPLIT_JOURNEY)
        waiting = count_by(s, e, "state", e.c.journey_id == SPLIT_JOURNEY)["waiting"]
    expect(page.get_by_test_id("entered")).to_contain_text(str(sum(groups.values())))
    expect(page.get_by_test_id("step-counts").locator("tr[data-step='done'] [data-k=waiting]")).to_have_text(
        str(waiting))
    expect(page.get_by_test_id("step-counts").locator("tr[data-step='channel_test'] [data-k=exits]")).to_have_text(
        f"Holdout: {groups['holdout']}")  # the exit's code in words
    # the experiment: per-group counts from the same rows, and a verdict in words
    table = page.get_by_test_id("experiment-table")
    for name, n in groups.items():
        expect(table.locator(f"tr[data-group='{name}'] [data-k=entered]")).to_have_text(str(n))
    expect(page.get_by_test_id("verdict").first).to_contain_text("Email first worse than WeChat first in Reply, p = ")
    # the source and the messages for a sample customer, each channel and locale
    expect(page.get_by_test_id("source")).to_contain_text(f"id: {SPLIT_JOURNEY}")
    for channel in ("wechat", "email"):
        for locale in ("zh-CN", "en"):
            expect(page.locator(f"[data-testid=preview][data-step=send_wechat_first][data-channel={channel}]"
                                f"[data-locale='{locale}']")).to_have_count(1)
    _no_page_scroll(page)
    page.screenshot(path=str(shots / f"ops-journey-{size}.png"), full_page=size == "phone")


def test_journey_page_period_changes_the_counts(ops_page: tuple[Any, str], book: Seed) -> None:
    page, _size = ops_page
    expect = playwright_sync.expect
    page.goto("/ops/journeys/complaint-response?start=2020-01-01&end=2020-01-31")
    expect(page.get_by_test_id("entered")).to_contain_text("0")
    expect(page.get_by_test_id("step-counts").locator("tr[data-step='handle'] [data-k=tasks_opened]")).to_have_text(
        "0")
    page.goto("/ops/journeys/complaint-response?start=2020-01-31&end=2020-01-01")
    expect(page.get_by_test_id("tool-error")).to_have_text("end: must be after start")


def test_report_page_shows_targets_and_inline_charts(ops_page: tuple[Any, str], book: Seed, shots: Path) -> None:
    page, size = ops_page
    expect = playwright_sync.expect
    start, end = (book.now - timedelta(days=30)).date(), (book.now + timedelta(days=1)).date()
    page.goto(f"/ops/report?start={start}&end={end}&by=tier")
    from engine.language.moments import parse_local_moment, parse_period_end

    report = build_report(parse_local_moment(start.isoformat()), parse_period_end(end.isoformat()), "tier")
    targets = page.get_by_test_id("report-targets")
    for check in report["target_check"]:
        word = {True: "met", False: "missed", None: "no data"}[check["met"]]
        expect(targets.locator(f"tr[data-metric='{check['metric']}'] [data-k=status]")).to_have_text(word)
    expect(page.get_by_test_id("report-period")).to_contain_text("· China (Shanghai) Time")
    for chart in ("reach", "sla", "churn", "nps"):
        expect(page.get_by_test_id(f"chart-{chart}").locator("svg")).to_be_visible()
    _no_page_scroll(page)
    page.screenshot(path=str(shots / f"ops-report-{size}.png"), full_page=size == "phone")


def test_ops_pages_in_chinese(ops_page: tuple[Any, str], db_url: str, shots: Path) -> None:
    page, size = ops_page
    expect = playwright_sync.expect
    with session_scope(db_url) as s:
        s.execute(sa.text("UPDATE app_user SET locale = 'zh-CN' WHERE username = 'olga'"))
    page.goto("/ops/journeys")
    header = page.get_by_test_id("journeys").locator("thead")
    expect(header).to_contain_text("旅程")
    expect(header).not_to_contain_text("姓名")
    expect(page.locator("tr[data-journey='retention-boost-gold'] [data-testid=state]")).to_have_text("由动态调整开启")
    expect(page.locator("tr[data-journey='retention-boost-silver'] [data-testid=state]")).to_have_text("已关闭")
    # A date entry in words, not "policy.expiry_date -30d 10:00".
    expect(page.locator("tr[data-journey='renewal-reminder'] [data-k=entry-date]")).to_have_text(
        "保单到期日前30天 10:00")
    # A schedule and an audience condition in words, not "0 10 * * WED" or "customer.churn_risk ge 0.5".
    expect(page.locator("tr[data-journey='silver-weekly-push'] [data-k=entry-cron]")).to_contain_text("在 10:00")
    expect(page.locator("tr[data-journey='retention-boost-gold'] [data-k=audience-when]")).to_have_text(
        "条件 流失风险已知 且 流失风险不低于0.5")
    _no_page_scroll(page)
    page.screenshot(path=str(shots / f"ops-journeys-zh-{size}.png"), full_page=size == "phone")
    page.goto(f"/ops/journeys/{SPLIT_JOURNEY}")
    expect(page.get_by_test_id("verdict").first).to_contain_text("邮件优先的回复不如微信优先")
    expect(page.get_by_test_id("diagram")).to_contain_text("随机分流")
    _no_page_scroll(page)
    page.screenshot(path=str(shots / f"ops-journey-zh-{size}.png"), full_page=size == "phone")


def test_simulate_page_forecasts_what_the_dry_run_gives(ops_page: tuple[Any, str], book: Seed, shots: Path) -> None:
    page, size = ops_page
    expect = playwright_sync.expect
    from engine.language.moments import parse_local_moment
    from engine.planning.simulate import simulate

    start, end = book.now.date(), (book.now + timedelta(days=34)).date()  # a month boundary: monthly callbacks
    page.goto("/ops/simulate")
    page.fill("input[name=start]", start.isoformat())
    page.fill("input[name=end]", end.isoformat())
    page.locator("form.tool button").click()
    page.wait_for_load_state()
    forecast = simulate(parse_local_moment(start.isoformat()),
                        parse_local_moment(end.isoformat()) + timedelta(days=1)).to_json()
    totals = forecast["totals"]
    assert totals["touches"] + totals["tasks"] > 0  # something to compare
    expect(page.get_by_test_id("simulate-totals")).to_contain_text(f"Touches: {totals['touches']} ·")
    expect(page.get_by_test_id("simulate-totals")).to_contain_text(f"Tasks: {totals['tasks']} ·")
    expect(page.get_by_test_id("simulate-days").locator("tbody tr")).to_have_count(len(forecast["days"]))
    _no_page_scroll(page)
    page.screenshot(path=str(shots / f"ops-simulate-{size}.png"), full_page=size == "phone")


def test_explain_page_shows_one_customers_journeys_and_touches(ops_page: tuple[Any, str], db_url: str, book: Seed,
                                                              shots: Path) -> None:
    page, size = ops_page
    expect = playwright_sync.expect
    from engine.language.moments import parse_local_moment
    from engine.planning.explain import explain

    with session_scope(db_url) as s:
        s.execute(sa.text("UPDATE app_user SET locale = 'zh-CN' WHERE username = 'olga'"))
        due = book.now + timedelta(hours=2)
        # A touch the sender dropped for the cap: its reason in words, the window too (before: English, "7d").
        s.add(Touch(key="why:cap", customer_id=book.customers["C1"], journey_id="birthday-care", journey_version="v1",
                    step_id="s", occurrence="o", category="marketing", channel="sms", template="t", planned_for=due,
                    due_at=due, status="dropped", created_at=due,
                    error_reason="marketing_cap: marketing cap 2 per 7d reached when sending"))
    at = (book.now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    page.goto("/ops/explain")
    page.fill("input[name=customer]", "C1")
    page.fill("input[name=at]", at)
    page.locator("form.tool button").click()
    page.wait_for_load_state()
    report = explain("C1", parse_local_moment(at))
    expect(page.get_by_test_id("explain-customer")).to_contain_text("C1 · 张** · 黄金")  # the name masked
    expect(page.get_by_test_id("explain-journeys").locator("tbody tr")).to_have_count(len(report["journeys"]))
    rows = page.get_by_test_id("explain-touches").locator("tbody tr")
    expect(rows).to_have_count(max(1, len(report["touches"])))
    for status in {t["status"] for t in report["touches"]}:
        # Each status in words, not its code.
        expect(rows.locator(f"[data-status='{status}']").first).not_to_have_text(status)
    for due in rows.locator("[data-k=due]").all_inner_texts():
        assert "T" not in due and "+08:00" not in due  # a local time in words, not an ISO string
    # An event entry's next firing in words: the event's name, not its code.
    complaint = page.get_by_test_id("explain-journeys").locator("tr", has_text="complaint-response")
    expect(complaint.locator("[data-k=next]")).to_have_text("客户投诉 发生时")
    # Every next firing in Chinese words: no English, no raw code or ISO time (登录APP: the app's name).
    for shown in page.get_by_test_id("explain-journeys").locator("[data-k=next]").all_inner_texts():
        assert not re.search(r"[A-Za-z_]{2,}|T\d\d:", re.sub("(?i)app", "", shown)), shown
    expect(page.get_by_test_id("explain-touches")).not_to_contain_text("marketing cap")
    expect(rows.locator("[data-code=marketing_cap]")).to_have_text("发送时已达营销上限（每7天2条）")
    for shown in rows.locator("[data-k=reason]").all_inner_texts():
        assert not re.search(r"[A-Za-z_]{2,}|\d+[wdhm]\b", shown), shown
    _no_page_scroll(page)
    page.screenshot(path=str(shots / f"ops-explain-{size}.png"), full_page=size == "phone")
