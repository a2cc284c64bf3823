"""The review pages word each change by its kind: a journey, a template or a settings file, in zh-CN and
en. Before, every one was a "journey" (the list's column, "No version of this journey is in force yet.",
"Versions of this journey"), and tiers.yaml was a "delivery setting". In Chromium at 1280 and 390 px."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from console import review
from engine.language.journey_review import PENDING, versions
from store.db import session_scope
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale
from tests.review_support import config_copy

ROOT = Path(__file__).resolve().parents[2]
JOURNEY = "silver-weekly-push"
TEMPLATE = "silver_weekly_push"
SUBJECTS = {"journey": JOURNEY, "template": f"template:{TEMPLATE}", "setting": "setting:tiers.yaml"}
WORDS: dict[str, dict[str, tuple[str, str]]] = {  # kind → locale → (badge, history heading)
    "journey": {"en": ("Journey", "Versions of this journey"), "zh-CN": ("旅程", "此旅程的各版本")},
    "template": {"en": ("Template", "Versions of this template"), "zh-CN": ("模板", "此模板的各版本")},
    "setting": {"en": ("Settings file", "Versions of this settings file"), "zh-CN": ("设置文件", "此设置文件的各版本")},
}


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def pending(seed: Seed, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The shipped files recorded as installed, then a journey, a template and tiers.yaml changed and
    submitted by olga: kind → the pending version's id."""
    config = config_copy(tmp_path, monkeypatch)
    for folder, env in (("journeys", "JOURNEYS_DIR"), ("templates", "JOURNEYS_TEMPLATES_DIR")):
        shutil.copytree(ROOT / folder, tmp_path / folder)
        monkeypatch.setenv(env, str(tmp_path / folder))
    with session_scope(db_url) as s:
        review.submit_changes(s, "olga")  # first start: everything approved as installed
    _replace(tmp_path / "journeys" / f"{JOURNEY}.yaml", "priority: 40", "priority: 45")
    _replace(tmp_path / "templates" / TEMPLATE / "sms.zh-CN.j2", "健康小贴士", "理财小贴士")
    _replace(config / "tiers.yaml", "churn_threshold: 0.15", "churn_threshold: 0.2")
    with session_scope(db_url) as s:
        review.submit_changes(s, "olga")
        found = {v.journey_id: v.id for v in versions(s) if v.state == PENDING}
    return {kind: found[subject] for kind, subject in SUBJECTS.items()}


@pytest.mark.parametrize(("device", "locale"), [(DESK, "en"), (PHONE, "zh-CN"), (DESK, "zh-CN"), (PHONE, "en")],
                         ids=["desktop-en", "phone-zh", "desktop-zh", "phone-en"])
def test_each_change_is_worded_by_its_kind(new_page: PageFactory, pending: dict[str, int], db_url: str,
                                           device: dict[str, Any], locale: str) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    set_locale(db_url, "olga", locale)
    page = new_page("olga", device, lands_on="**/ops/**")
    page.goto("/ops/review")
    rows = page.get_by_test_id("pending")
    journey_word = WORDS["journey"][locale][0]
    expect(rows.locator("th").filter(has_text=journey_word)).to_have_count(0)
    for kind, version_id in pending.items():
        badge, heading = WORDS[kind][locale]
        expect(rows.locator(f"tr[data-version='{version_id}']").get_by_test_id("kind")).to_have_text(badge)
    assert_fits(page)
    for kind, version_id in pending.items():
        badge, heading = WORDS[kind][locale]
        page.goto(f"/ops/review/{version_id}")
        expect(page.get_by_test_id("kind")).to_have_text(badge)
        expect(page.locator("h2").filter(has_text=heading)).to_have_count(1)
        if kind != "journey":
            expect(page.locator("main, body").first).not_to_contain_text(WORDS["journey"][locale][1])
        assert_fits(page)
