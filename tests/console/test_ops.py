"""Ops pages: journeys with their validation status; explain, simulate and report call the engine directly."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from console.i18n import Translator
from engine.language.moments import parse_local_moment
from engine.language.validation import validate
from engine.loop.experiments import compare, split_results
from engine.loop.reports import build_report
from engine.loop.tables import enrollment_t, task_t, touch_t
from engine.planning.explain import explain
from engine.planning.simulate import simulate
from store.clock import utcnow
from store.db import session_scope
from store.models import JourneyVersion, KeyValue, Touch
from tests.console.conftest import Seed, login
from tests.console.ops_seed import SPLIT_JOURNEY, count_by, seed_activity
from tests.console.test_form_errors import set_locale


def _journey_row(page: str, journey_id: str) -> str:
    return page.split(f'data-journey="{journey_id}"', 1)[1].split("</tr>", 1)[0]


def test_journeys_page_shows_each_journey_and_the_validation_status(client: TestClient) -> None:
    login(client, "olga")
    page = client.get("/ops/journeys")
    assert page.status_code == 200
    report = validate()
    for loaded in report.journeys:
        assert f'data-journey="{loaded.id}"' in page.text and loaded.version[:8] in page.text
    status = "All journey files, templates and configuration are valid." if report.ok else "problem(s) found"
    assert status in page.text


def test_journeys_page_reads_the_registry_cache_instead_of_validating_per_request(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.language.journey_registry as registry
    import engine.language.validation as validation

    calls: list[str] = []

    def counting(module: Any, name: str) -> None:
        real = getattr(module, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)

    counting(registry, "validate_cached")
    counting(validation, "validate")  # what the page called on every load before
    login(client, "olga")
    for _ in range(3):
        assert client.get("/ops/journeys").status_code == 200
    assert client.get("/ops/journeys/birthday-care").status_code == 200
    # at most the first request validates (nothing at all if this process validated the same files before)
    assert calls.count("validate_cached") <= 1 and calls.count("validate") <= 1


def test_journeys_page_states_entry_audience_and_last_week_volumes(client: TestClient, seed: Seed,
                                                                    db_url: str) -> None:
    now = utcnow()
    with session_scope(db_url) as s:
        s.add(KeyValue(key="journey_enabled:retention-boost-gold", value={"enabled": True}, updated_at=now))
        s.add(KeyValue(key="journey_enabled:silver-weekly-push", value={"enabled": False}, updated_at=now))
        for i, days_ago in enumerate([1, 2, 6, 9]):  # the one nine days ago is outside the week
            at = now - timedelta(days=days_ago)
            s.add(Touch(key=f"k{i}", customer_id=seed.customers["C1"], journey_id="birthday-care", journey_version="v",
                        step_id="greet", occurrence=str(i), category="service", channel="sms", template="x",
                        planned_for=at, due_at=at, created_at=at))
    login(client, "olga")
    page = client.get("/ops/journeys").text
    with session_scope(db_url) as s:
        touches = count_by(s, touch_t, "journey_id", touch_t.c.planned_for >= now - timedelta(days=7))
        tasks = count_by(s, task_t, "journey_id", task_t.c.created_at >= now - timedelta(days=7))
    assert touches["birthday-care"] == 3 and tasks["gold-monthly-callback"] == 5
    for journey_id in ("birthday-care", "gold-monthly-callback", "renewal-reminder"):
        row = _journey_row(page, journey_id)
        assert f'data-testid="touches-7d">{touches.get(journey_id, 0)}<' in row
        assert f'data-testid="tasks-7d">{tasks.get(journey_id, 0)}<' in row
    assert 'data-state="switched_on"' in page.split('data-journey="retention-boost-gold"', 1)[1][:40]
    assert "Switched on by dynamic adjustment" in _journey_row(page, "retention-boost-gold")
    assert "Switched off by dynamic adjustment" in _journey_row(page, "silver-weekly-push")
    # enabled: false in its file and no switch: off, not shown like the journeys that run
    assert 'data-state="off"' in page.split('data-journey="retention-boost-silver"', 1)[1][:40]
    gold = _journey_row(page, "gold-monthly-callback")
    assert "Scheduled" in gold and "Gold" in gold and "Service" in gold
    assert "On an event" in _journey_row(page, "complaint-response")
    assert "Date-relative" in _journey_row(page, "birthday-care")


def test_journeys_page_in_chinese_names_the_journey_column_not_a_person(client: TestClient) -> None:
    token = login(client, "olga")
    client.post("/me/locale", data={"csrf_token": token, "locale": "zh-CN", "back": "/ops/journeys"})
    page = client.get("/ops/journeys").text
    header = page.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert "旅程" in header and "姓名" not in header
    assert "已关闭" in _journey_row(page, "retention-boost-silver")


def test_a_broken_journey_file_is_shown_rejected_with_file_and_line(client: TestClient, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     project_root: Path, db_url: str) -> None:
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    good_source = (project_root / "journeys" / "silver-weekly-push.yaml").read_text("utf-8")
    (journeys / "good.yaml").write_text(good_source, "utf-8")
    (journeys / "broken.yaml").write_text("id: broken\nname: x\ncategory: nonsense\n", "utf-8")
    kept_source = (project_root / "journeys" / "birthday-care.yaml").read_text("utf-8")
    (journeys / "was-good.yaml").write_text(kept_source.replace("category: service", "category: nonsense"), "utf-8")
    with session_scope(db_url) as s:  # the last good version of was-good.yaml, published earlier
        s.add(JourneyVersion(journey_id="birthday-care", version="f" * 64, path="was-good.yaml", source=kept_source,
                             published_at=utcnow() - timedelta(days=3)))
    monkeypatch.setenv("JOURNEYS_DIR", str(journeys))
    login(client, "olga")
    page = client.get("/ops/journeys").text
    assert "silver-weekly-push" in page and "Rejected: not in force" in page
    assert "broken.yaml:" in page
    kept = _journey_row(page, "birthday-care")
    assert 'data-state="rejected_kept"' in page.split('data-journey="birthday-care"', 1)[1][:40]
    assert "Rejected: last good version kept in force" in kept and "ffffffff" in kept
    assert "silver-weekly-push" in page and 'href="/ops/journeys/birthday-care"' in kept


def test_explain_page_calls_explain_for_a_customer(client: TestClient) -> None:
    login(client, "olga")
    page = client.get("/ops/explain", params={"customer": "C1", "at": "2026-11-23T10:00"})
    assert page.status_code == 200
    report = explain("C1", parse_local_moment("2026-11-23T10:00"))
    assert 'data-testid="explain-journeys"' in page.text
    for journey in report["journeys"]:
        # Named as everywhere in the console: the half of "中文 / English" in the user's language (olga: en).
        assert html.escape(journey["name"].split(" / ")[-1]) in page.text
    for far in ("0001-01-01T01:00", "9999-12-31T23:00"):  # refused beside the form, not a 500
        page = client.get("/ops/explain", params={"customer": "C1", "at": far})
        assert page.status_code == 200 and "is outside the years 1900–2199" in page.text
    unknown = client.get("/ops/explain", params={"customer": "NOBODY", "at": "2026-11-23"})
    assert unknown.status_code == 200 and "no customer with external id" in unknown.text


def test_simulate_page_shows_the_dry_run_figures(client: TestClient) -> None:
    login(client, "olga")
    page = client.get("/ops/simulate", params={"start": "2026-11-23", "end": "2026-11-29"})
    assert page.status_code == 200
    totals = simulate(parse_local_moment("2026-11-23"), parse_local_moment("2026-11-30")).to_json()["totals"]
    shown = page.text.split('data-testid="simulate-totals"', 1)[1].split("</p>", 1)[0]
    assert f"{totals['touches']} ·" in shown and f"{totals['tasks']} ·" in shown


@pytest.mark.parametrize(("params", "message"), [
    ({"start": "2026-11-23", "end": "2026-01-01"}, "end: must be after start"),
    ({"start": "2026-01-01", "end": "2026-12-31"}, "end: a period of at most 92 days"),
    ({"start": "yesterday", "end": "2026-12-31"}, "is not an ISO 8601 date"),
    ({"start": "2026-11-23"}, "end: required"),
    ({"start": "2" * 100, "end": "2026-12-31"}, "at most 64 characters"),
    ({"start": "0001-01-01", "end": "0001-01-02"}, "is outside the years 1900–2199"),
    ({"start": "9999-12-30", "end": "9999-12-31"}, "is outside the years 1900–2199"),
])
def test_simulate_page_says_what_is_wrong_with_the_form(client: TestClient, params: dict[str, str],
                                                      message: str) -> None:
    login(client, "olga")
    page = client.get("/ops/simulate", params=params)
    assert page.status_code == 200 and 'data-testid="tool-error"' in page.text and message in page.text


def test_report_page_shows_targets_and_groups(client: TestClient) -> None:
    login(client, "olga")
    page = client.get("/ops/report", params={"start": "2026-11-01", "end": "2026-11-30", "by": "tier"})
    assert page.status_code == 200
    report = build_report(parse_local_moment("2026-11-01"), parse_local_moment("2026-12-01"), "tier")
    assert report["groups"] and "<tr><th>All</th>" in page.text
    for tier in report["groups"]:  # each group in words, never its code ("none": the customers without a tier)
        words = "No tier" if tier == "none" else Translator("en").label("tier", tier)
        assert f'<tr><th data-group="{tier}">{words}</th>' in page.text
    assert 'data-testid="report-targets"' in page.text
    bad = client.get("/ops/report", params={"start": "2026-11-01", "end": "2026-11-30", "by": "planet"})
    assert "by: one of tier, journey, channel, branch" in bad.text


def test_the_chinese_report_names_its_groups_in_words(client: TestClient, db_url: str) -> None:
    """The groups' rows and the charts' bars said 'none' or 'gold' on the Chinese page (the other groupings,
    channel and journey, go through the same macro, console/templates/labels.html report_group)."""
    by = "tier"
    set_locale(db_url, "olga", "zh-CN")
    login(client, "olga")
    page = client.get("/ops/report", params={"start": "2026-11-01", "end": "2026-11-30", "by": by}).text
    zh = Translator("zh-CN")
    report = build_report(parse_local_moment("2026-11-01"), parse_local_moment("2026-12-01"), by)
    assert report["groups"]
    for group in report["groups"]:
        cell = page.split(f'<th data-group="{group}">', 1)[1].split("</th>", 1)[0]
        assert cell != group and re.search(r"[\u4e00-\u9fff]", cell), (group, cell)
    reach = page.split('data-testid="chart-reach"', 1)[1].split("</svg>")[0]
    ticks = re.findall(r'class="tick">([^<]*)</text>', reach)
    assert all(re.search(r"[\u4e00-\u9fff]|^\d", t) for t in ticks), ticks
    if "none" in report["tier_groups"]:
        assert zh("No tier") in ticks


@pytest.mark.parametrize("tool", ["explain", "simulate", "report"])
def test_the_old_tool_addresses_redirect_and_nothing_runs_cli_arguments(client: TestClient, tool: str) -> None:
    token = login(client, "olga")
    moved = client.get(f"/ops/tools/{tool}", follow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == f"/ops/{tool}"
    # The free-text CLI box is gone: a POST of arguments (say, --out somewhere) is not a route any more.
    posted = client.post(f"/ops/tools/{tool}", data={"csrf_token": token, "args": "--out /tmp/x"})
    assert posted.status_code == 405


def test_agents_cannot_use_ops_tools(client: TestClient) -> None:
    login(client, "ann")
    assert client.get("/ops/report").status_code == 403
    assert client.get("/ops/explain").status_code == 403
    assert client.get("/ops/tools/report", follow_redirects=False).status_code == 403


def test_journey_page_counts_per_step_match_the_database(client: TestClient, seed: Seed, db_url: str) -> None:
    seed_activity(db_url, list(seed.customers.values()), seed.now)
    login(client, "olga")
    page = client.get("/ops/journeys/complaint-response").text
    with session_scope(db_url) as s:
        ours = task_t.c.journey_id == "complaint-response"
        opened = count_by(s, task_t, "journey_id", ours, task_t.c.step_id == "handle")["complaint-response"]
        closed = count_by(s, task_t, "journey_id", ours, task_t.c.completed_at.is_not(None))["complaint-response"]
        e = enrollment_t
        exits = count_by(s, e, "exit_reason", e.c.journey_id == "complaint-response", e.c.exited_at.is_not(None))
    handle = page.split('<tr data-step="handle">', 1)[1].split("</tr>", 1)[0]
    assert f'data-k="tasks_opened">{opened}<' in handle and f'data-k="tasks_closed">{closed}<' in handle
    # the exit in the words of its label, its reason kept as the code
    resolved = page.split('<tr data-step="resolved">', 1)[1].split("</tr>", 1)[0]
    assert f'data-code="resolved" title="resolved">Complaint resolved</span>: {exits["resolved"]}' in resolved
    # the flow: every step drawn, wait_for exits labelled, and the source and sample messages beside it
    assert 'data-testid="diagram"' in page
    for step in ("acknowledge", "handle", "wait_resolved", "escalate", "unresolved"):
        assert f'data-step="{step}"' in page
    assert "on event Complaint resolved" in page and "after 24 hours" in page  # the event and timeout in words
    assert "id: complaint-response" in page and 'data-channel="sms" data-locale="zh-CN"' in page
    assert client.get("/ops/journeys/no-such-journey").status_code == 404
    bad = client.get("/ops/journeys/complaint-response", params={"start": "2026-12-01", "end": "2026-11-01"})
    assert bad.status_code == 200 and "end: must be after start" in bad.text
    far = client.get("/ops/journeys/complaint-response", params={"start": "0001-01-01", "end": "0001-01-05"})
    assert far.status_code == 200 and "is outside the years 1900–2199" in far.text


def test_journey_page_shows_the_split_experiment_with_a_verdict(client: TestClient, seed: Seed,
                                                                db_url: str) -> None:
    seed_activity(db_url, list(seed.customers.values()), seed.now)
    login(client, "olga")
    page = client.get(f"/ops/journeys/{SPLIT_JOURNEY}").text
    journey = next(j for j in validate().journeys if j.id == SPLIT_JOURNEY).journey
    with session_scope(db_url) as s:
        results = split_results(s, journey, seed.now - timedelta(days=30), seed.now + timedelta(days=1))
    (result,) = results
    email = next(g for g in result.groups if g.name == "email_first")
    assert result.baseline == "wechat_first" and email.entered == 160
    p = email.comparisons["reply"].p_value
    assert p is not None and p < 0.05
    # the variants by the words the journey file gives them, each name kept in the tooltip
    email_words = '<span data-k="variant" data-code="email_first" title="email_first">Email first</span>'
    wechat_words = '<span data-k="variant" data-code="wechat_first" title="wechat_first">WeChat first</span>'
    verdict = f"{email_words} worse than {wechat_words} in Reply, p = {p:.2g}."
    assert verdict in html.unescape(page)
    assert '<tr data-group="holdout"><th>Holdout</th><td data-k="entered">36</td>' in page


def test_report_page_marks_targets_met_or_missed_and_draws_the_charts(client: TestClient) -> None:
    login(client, "olga")
    page = client.get("/ops/report", params={"start": "2026-11-01", "end": "2026-11-30", "by": "tier"}).text
    report = build_report(parse_local_moment("2026-11-01"), parse_local_moment("2026-12-01"), "tier")
    for check in report["target_check"]:
        row = page.split(f'<tr data-metric="{check["metric"]}">', 1)[1].split("</tr>", 1)[0]
        word = {True: "met", False: "missed", None: "no data"}[check["met"]]
        assert f">{word}</td>" in row
    assert "2026-11-01 – 2026-11-30 · China (Shanghai) Time" in page
    for chart in ("reach", "sla", "churn", "nps"):
        assert f'data-testid="chart-{chart}"' in page
    assert "<svg" in page.split('data-testid="chart-churn"', 1)[1][:200]


def test_split_comparison_agrees_with_the_chi_square_test_and_waits_for_enough_data() -> None:
    from scipy.stats import chi2_contingency

    c = compare(1000, 100, 1000, 130)
    expected = chi2_contingency([[100, 900], [130, 870]], correction=False).pvalue
    assert c.enough and c.p_value == pytest.approx(expected, rel=1e-9)
    assert c.difference == pytest.approx(0.03) and c.low is not None and c.high is not None
    assert c.low < 0.03 < c.high and c.low > 0  # significant at 5%: the interval excludes 0
    assert not compare(12, 1, 12, 6).enough  # too few to judge
    assert compare(50, 0, 50, 0).p_value == 1.0  # nobody on either side: nothing separates them
