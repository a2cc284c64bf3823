"""The review pages in real Chromium at 1280 and 390 px: the submitter cannot approve their own change,
a compliance reviewer (in zh-CN) approves it with a comment and it goes in force, and a rollback from
the history puts the earlier version back. Screenshots go to docs/screenshots/ with
JOURNEYS_SCREENSHOTS=1 (as in test_ops_browser), else to the test's temporary folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from console import review
from console.auth import create_user
from engine.language.journey_registry import load_in_force
from engine.language.journey_review import APPROVED, PENDING, versions
from engine.language.template_review import land_templates
from store.db import session_scope
from store.models import AuditLog, JourneyVersion
from tests.console.conftest import DESK, PASSWORD, PHONE, PageFactory, Seed, assert_fits

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
ROOT = Path(__file__).resolve().parents[2]
CHANGED = "silver-weekly-push"  # a marketing journey: its changes need review


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return ROOT / "docs" / "screenshots" if os.environ.get("JOURNEYS_SCREENSHOTS") == "1" else tmp_path


def submitted(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str, env: str,
              edit: Callable[[Path], None]) -> int:
    """A copy of the shipped ``folder`` in force (first start: approved), then ``edit`` of it submitted by
    adam (admin); the id of the pending version."""
    copy = tmp_path / folder
    shutil.copytree(ROOT / folder, copy)
    monkeypatch.setenv(env, str(copy))
    with session_scope(db_url) as s:
        create_user(s, "carol", PASSWORD, "compliance", display_name="Carol", locale="zh-CN")
        load_in_force(s)  # first start: the shipped programme counts as approved
        land_templates(s)
    edit(copy)
    with session_scope(db_url) as s:
        [change] = review.submit_changes(s, "adam")
    return change.id


def _replace(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text("utf-8").replace(old, new), encoding="utf-8")


@pytest.fixture
def pending(seed: Seed, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """The shipped journeys in force, and a change to the silver weekly push submitted by adam (admin)."""
    return submitted(db_url, tmp_path, monkeypatch, "journeys", "JOURNEYS_DIR",
                     lambda folder: _replace(folder / f"{CHANGED}.yaml", "priority: 40", "priority: 45"))


def _in_force(db_url: str) -> tuple[int, str]:
    with session_scope(db_url) as s:
        [row] = [v for v in versions(s, CHANGED) if v.in_force]
        return row.id, row.state


def reviewer_page(new_page: PageFactory, device: dict[str, Any], version_id: int, listed: str) -> Any:
    """The submitter (an admin, who holds the approve right) sees the change but no way to approve it;
    then compliance, in Chinese, opens it from the list (where it shows ``listed``): the page returned."""
    expect = playwright_sync.expect
    page = new_page("adam", device, lands_on="**/admin/users")
    page.goto(f"/ops/review/{version_id}")
    expect(page.get_by_test_id("own-change")).to_be_visible()
    expect(page.get_by_test_id("decision-form")).to_have_count(0)
    page = new_page("carol", device, lands_on="**/ops/review")
    row = page.get_by_test_id("pending").locator(f"tr[data-version='{version_id}']")
    expect(row).to_contain_text(listed)
    row.get_by_test_id(f"open-{version_id}").click()
    page.wait_for_url(f"**/ops/review/{version_id}")
    return page


def approve_on(page: Any, comment: str, screenshot: Path, phone: bool) -> None:
    """Check the pending page fits the screen, save its screenshot, approve with ``comment``."""
    expect = playwright_sync.expect
    expect(page.get_by_test_id("review-state").first).to_have_text("待审核")
    assert_fits(page)
    page.screenshot(path=str(screenshot), full_page=phone)
    page.get_by_test_id("comment").fill(comment)
    page.get_by_test_id("approve").click()
    expect(page.locator(".flash.ok")).to_contain_text("已批准")


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_review_flow_in_chromium(new_page: PageFactory, pending: int, db_url: str, shots: Path,
                                 device: dict[str, Any]) -> None:
    expect = playwright_sync.expect
    size = "desktop" if device is DESK else "phone"
    shipped_id, _ = _in_force(db_url)

    page = reviewer_page(new_page, device, pending, "adam")
    assert _in_force(db_url)[0] == shipped_id
    diff = page.get_by_test_id("diff")
    expect(diff.locator("span.del")).to_contain_text("priority: 40")
    expect(diff.locator("span.add")).to_contain_text("priority: 45")
    assert page.get_by_test_id("preview").count() > 0
    approve_on(page, "文案与受众已核对", shots / f"review-{size}.png", size == "phone")
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


TEMPLATE = "silver_weekly_push"  # sent by a marketing journey: its changes need review


@pytest.fixture
def pending_template(seed: Seed, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """The shipped templates in force, and a change of the silver weekly push's SMS wording submitted by adam."""
    return submitted(db_url, tmp_path, monkeypatch, "templates", "JOURNEYS_TEMPLATES_DIR",
                     lambda folder: _replace(folder / TEMPLATE / "sms.zh-CN.j2", "健康小贴士", "理财小贴士"))


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_template_review_in_chromium(new_page: PageFactory, pending_template: int, db_url: str, shots: Path,
                                     device: dict[str, Any]) -> None:
    expect = playwright_sync.expect
    size = "desktop" if device is DESK else "phone"

    page = reviewer_page(new_page, device, pending_template, TEMPLATE)
    expect(page.get_by_test_id("kind")).to_have_text("模板")
    diff = page.get_by_test_id("diff")
    expect(diff.locator("span.del")).to_contain_text("健康小贴士")
    expect(diff.locator("span.add")).to_contain_text("理财小贴士")
    previews = page.get_by_test_id("preview")
    expect(previews.filter(has_text="王小明您好")).not_to_have_count(0)  # rendered for a sample customer
    expect(previews.filter(has_text="理财小贴士")).not_to_have_count(0)
    approve_on(page, "短信文案已核对", shots / f"review-template-{size}.png", size == "phone")
    with session_scope(db_url) as s:
        [in_force] = [v for v in versions(s, f"template:{TEMPLATE}") if v.in_force]
        actions = s.exec(select(AuditLog.action).where(AuditLog.target_type == "template_version",
                                                        AuditLog.actor == "carol")).all()
    assert (in_force.id, in_force.state) == (pending_template, APPROVED)
    assert actions == ["template_version_approved"]
