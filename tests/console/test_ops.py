"""Ops pages: journeys with their validation status; explain/simulate/report run the CLI when it has them."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from console import routes_ops
from engine.language.validation import validate
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


@pytest.mark.parametrize("tool", ["explain", "simulate", "report"])
def test_tool_pages_run_the_cli_command_or_say_it_is_not_there(client: TestClient, tool: str) -> None:
    token = login(client, "olga")
    page = client.get(f"/ops/tools/{tool}")
    assert page.status_code == 200
    if tool in routes_ops.available_tools():
        ran = client.post(f"/ops/tools/{tool}", data={"csrf_token": token, "args": "--help"})
        assert ran.status_code == 200 and 'data-testid="tool-output"' in ran.text and "exit code 0" in ran.text
    else:
        assert 'data-testid="tool-unavailable"' in page.text
    assert client.get("/ops/tools/rm").status_code == 404


def test_agents_cannot_use_ops_tools(client: TestClient) -> None:
    token = login(client, "ann")
    assert client.get("/ops/tools/report").status_code == 403
    assert client.post("/ops/tools/report", data={"csrf_token": token, "args": ""}).status_code == 403
