"""Ops pages: journeys with their validation status; explain, simulate and report call the engine directly."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from engine.language.moments import parse_local_moment, parse_utc_moment
from engine.language.validation import validate
from engine.loop.reports import build_report
from engine.planning.explain import explain
from engine.planning.simulate import simulate
from tests.console.conftest import login


def test_journeys_page_shows_each_journey_and_the_validation_status(client: TestClient) -> None:
    login(client, "olga")
    page = client.get("/ops/journeys")
    assert page.status_code == 200
    report = validate()
    for loaded in report.journeys:
        assert loaded.id in page.text and loaded.version in page.text
    status = "All journey files, templates and configuration are valid." if report.ok else "problem(s) found"
    assert status in page.text


def test_a_broken_journey_file_is_shown_rejected_with_file_and_line(client: TestClient, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     project_root: Path) -> None:
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "good.yaml").write_text((project_root / "journeys" / "silver-weekly-push.yaml").read_text("utf-8"),
                                        "utf-8")
    (journeys / "broken.yaml").write_text("id: broken\nname: x\ncategory: nonsense\n", "utf-8")
    monkeypatch.setenv("JOURNEYS_DIR", str(journeys))
    login(client, "olga")
    page = client.get("/ops/journeys").text
    assert "silver-weekly-push" in page and "rejected" in page
    assert "broken.yaml:" in page


def test_explain_page_calls_explain_for_a_customer(client: TestClient) -> None:
    login(client, "olga")
    page = client.get("/ops/explain", params={"customer": "C1", "at": "2026-11-23T10:00"})
    assert page.status_code == 200
    report = explain("C1", parse_local_moment("2026-11-23T10:00"))
    assert 'data-testid="explain-journeys"' in page.text
    for journey in report["journeys"]:
        assert html.escape(journey["name"]) in page.text
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
])
def test_simulate_page_says_what_is_wrong_with_the_form(client: TestClient, params: dict[str, str],
                                                      message: str) -> None:
    login(client, "olga")
    page = client.get("/ops/simulate", params=params)
    assert page.status_code == 200 and 'data-testid="tool-error"' in page.text and message in page.text


def test_report_page_shows_targets_and_groups(client: TestClient) -> None:
    login(client, "olga")
    page = client.get("/ops/report", params={"start": "2026-11-01", "end": "2026-12-01", "by": "tier"})
    assert page.status_code == 200
    report = build_report(parse_utc_moment("2026-11-01"), parse_utc_moment("2026-12-01"), "tier")
    assert report["groups"] and "<tr><th>All</th>" in page.text
    for tier in report["groups"]:
        assert f"<tr><th>{tier}</th>" in page.text
    assert 'data-testid="report-targets"' in page.text
    bad = client.get("/ops/report", params={"start": "2026-11-01", "end": "2026-12-01", "by": "planet"})
    assert "by: one of tier, journey, channel, branch" in bad.text


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
