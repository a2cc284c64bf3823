"""The review pages in real Chromium at 1280 and 390 px: the submitter cannot approve their own change,
a compliance reviewer (in zh-CN) approves it with a comment and it goes in force, and a rollback from
the history puts the earlier version back. Screenshots go to docs/screenshots/ with
JOURNEYS_SCREENSHOTS=1 (as in test_ops_browser), else to the test's temporary folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from console import review
from console.auth import create_user
from engine.language.journey_registry import load_in_force
from engine.language.journey_review import APPROVED, PENDING, versions
from store.db import session_scope
from store.models import AuditLog, JourneyVersion
from tests.console.conftest import DESK, PASSWORD, PHONE, PageFactory, Seed

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
ROOT = Path(__file__).resolve().parents[2]
CHANGED = "silver-weekly-push"  # a marketing journey: its changes need review


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return ROOT / "docs" / "screenshots" if os.environ.get("JOURNEYS_SCREENSHOTS") == "1" else tmp_path


@pytest.fixture
def pending(seed: Seed, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """The shipped journeys in force, and a change to the silver weekly push submitted by adam (admin)."""
    folder = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys", folder)
    monkeypatch.setenv("JOURNEYS_DIR", str(folder))
    with session_scope(db_url) as s:
        create_user(s, "carol", PASSWORD, "compliance", display_name="Carol", locale="zh-CN")
        load_in_force(s)  # first start: the shipped programme counts as approved
    path = folder / f"{CHANGED}.yaml"
    path.write_text(path.read_text("utf-8").replace("priority: 40", "priority: 45"), encoding="utf-8")
    with session_scope(db_url) as s:
        [change] = review.submit_changes(s, "adam")
    return change.id


def _in_force(db_url: str) -> tuple[int, str]:
    with session_scope(db_url) as s:
        [row] = [v for v in versions(s, CHANGED) if v.in_force]
        return row.id, row.state


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_review_flow_in_chromium(new_page: PageFactory, pending: int, db_url: str, shots: Path,
                                 device: dict[str, Any]) -> None:
    expect = playwright_sync.expect
    size = "desktop" if device is DESK else "phone"
    shipped_id, _ = _in_force(db_url)

    # The submitter (an admin, who holds the approve right) sees the change but no way to approve it.
    page = new_page("adam", device, lands_on="**/admin/users")
    page.goto(f"/ops/review/{pending}")
    expect(page.get_by_test_id("own-change")).to_be_visible()
    expect(page.get_by_test_id("decision-form")).to_have_count(0)
    assert _in_force(db_url)[0] == shipped_id

    # Compliance, in Chinese: the list, the diff and the rendered messages, then approval with a comment.
    page = new_page("carol", device, lands_on="**/ops/review")
    row = page.get_by_test_id("pending").locator(f"tr[data-version='{pending}']")
    expect(row).to_contain_text("adam")
    row.get_by_test_id(f"open-{pending}").click()
    page.wait_for_url(f"**/ops/review/{pending}")
    diff = page.get_by_test_id("diff")
    expect(diff.locator("span.del")).to_contain_text("priority: 40")
    expect(diff.locator("span.add")).to_contain_text("priority: 45")
    assert page.get_by_test_id("preview").count() > 0
    expect(page.get_by_test_id("review-state").first).to_have_text("待审核")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(shots / f"review-{size}.png"), full_page=size == "phone")
    page.get_by_test_id("comment").fill("文案与受众已核对")
    page.get_by_test_id("approve").click()
    expect(page.locator(".flash.ok")).to_contain_text("已批准")
    assert _in_force(db_url) == (pending, APPROVED)

    # Rollback from the history: the shipped version is in force again, in one step.
    history = page.get_by_test_id("history")
    history.get_by_test_id(f"rollback-comment-{shipped_id}").fill("暂停调整")
    history.get_by_test_id(f"rollback-{shipped_id}").click()
    expect(page.locator(".flash.ok")).to_contain_text("已回滚")
    assert _in_force(db_url)[0] == shipped_id
    with session_scope(db_url) as s:
        changed = s.get(JourneyVersion, pending)
        assert changed is not None and (changed.reviewed_by, changed.review_comment) == ("carol", "文案与受众已核对")
        actions = s.exec(select(AuditLog.action).where(AuditLog.target_type == "journey_version",
                                                        AuditLog.actor == "carol").order_by(col(AuditLog.id))).all()
    assert actions == ["journey_version_approved", "journey_version_rollback"]
    assert PENDING not in {v.state for v in versions_of(db_url)}


def versions_of(db_url: str) -> list[Any]:
    with session_scope(db_url) as s:
        return versions(s, CHANGED)
