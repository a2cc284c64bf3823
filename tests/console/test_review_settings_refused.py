"""Submitting changes on the review page while a settings file would be refused on landing
(engine.language.settings_checks): the page shows each file:line problem, in the reader's language, and
nothing is recorded, not even the journey change submitted with it. Before, the landing logged the
refusal, recorded the rest, and the page said the submission went through. In Chromium at 1280 and 390 px.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import func, select
from starlette.testclient import TestClient

from console import review
from engine.language import queue_config
from store.db import session_scope
from store.models import JourneyVersion
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits, login
from tests.console.test_form_errors import set_locale
from tests.review_support import config_copy

ROOT = Path(__file__).resolve().parents[2]
JOURNEY = "silver-weekly-push"
WORDS = {
    "en": "Nothing was submitted: these settings files would not go in force.",
    "zh-CN": "未提交任何内容：以下设置文件无法生效。",
}


def recorded(url: str) -> int:
    with session_scope(url) as s:
        return int(s.exec(select(func.count()).select_from(JourneyVersion)).one())


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def config(seed: Seed, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Copies of the shipped configuration and journeys, recorded as installed, then a journey changed;
    the configuration folder (the test breaks a settings file in it)."""
    folder = config_copy(tmp_path, monkeypatch)
    journeys = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys", journeys)
    monkeypatch.setenv("JOURNEYS_DIR", str(journeys))
    with session_scope(db_url) as s:
        review.submit_changes(s, "olga")  # first start: everything approved as installed
    _replace(journeys / f"{JOURNEY}.yaml", "priority: 40", "priority: 45")
    return folder


def unknown_queue(config: Path) -> int:
    """The gold tier's notify_queue made 'opz'; the line it is on."""
    path = config / "tiers.yaml"
    _replace(path, "retention-boost-gold]\n    notify_queue: ops", "retention-boost-gold]\n    notify_queue: opz")
    lines = path.read_text("utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if "notify_queue: opz" in line)


@pytest.mark.parametrize(("device", "locale"), [(DESK, "en"), (PHONE, "zh-CN")], ids=["desktop-en", "phone-zh"])
def test_the_page_names_the_refused_settings_file_and_records_nothing(
    new_page: PageFactory, config: Path, db_url: str, device: dict[str, Any], locale: str,
) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    line = unknown_queue(config)
    set_locale(db_url, "olga", locale)
    before = recorded(db_url)
    page = new_page("olga", device, lands_on="**/ops/**")
    page.goto("/ops/review")
    page.get_by_test_id("submit-changes").click()
    shown = page.get_by_test_id("settings-problems")
    expect(shown).to_contain_text(WORDS[locale])
    expect(shown.locator("code").filter(has_text=f"tiers.yaml:{line}: unknown queue 'opz'")).to_have_count(1)
    assert_fits(page)
    assert recorded(db_url) == before  # neither the tier file nor the journey changed with it
    # Mended, the same button submits both.
    (config / "tiers.yaml").write_text((config / "tiers.yaml").read_text("utf-8").replace("opz", "ops"))
    page.get_by_test_id("submit-changes").click()
    expect(page.locator(".flash.ok")).to_be_visible()
    expect(page.get_by_test_id("settings-problems")).to_have_count(0)
    assert recorded(db_url) == before + 1  # the journey; the tier file is the one in force again


def test_the_submit_answers_422_with_the_problems(client: TestClient, config: Path, db_url: str) -> None:
    line = unknown_queue(config)
    token = login(client, "olga")
    before = recorded(db_url)
    page = client.post("/ops/review/submit", data={"csrf_token": token}, follow_redirects=False)
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert f"<code>tiers.yaml:{line}: unknown queue &#39;opz&#39;" in page.text
    assert recorded(db_url) == before


def test_a_queues_file_dropping_a_queue_the_tiers_name_is_shown_too(client: TestClient, config: Path,
                                                                     db_url: str) -> None:
    """Refused by the desk (queue_config.current keeps the queues in force), which only logged it."""
    path = config / "queues.yaml"
    assert "ops" in queue_config.current(path).declared
    _replace(path, "  ops:\n    teams: [ops]\n    outcomes: [resolved]\n    clock: business\n", "")
    token = login(client, "olga")
    before = recorded(db_url)
    page = client.post("/ops/review/submit", data={"csrf_token": token}, follow_redirects=False)
    assert page.status_code == 422
    assert "unknown queue &#39;ops&#39;" in page.text and 'data-testid="settings-problems"' in page.text
    assert recorded(db_url) == before
