"""The pages that show templates, in Chinese, in real Chromium at 1280 and 390 px: the review list and a
template's review page, the list of template files that do not compile, the test-send form and the
users page name templates, settings and languages in words, keeping a code at most as secondary text
(``<code>``). Before, the test send's template menu, the previews and the compile problems showed
folder names (``silver_weekly_push``), the review page's title the folder name, and the language menus
``zh-CN`` / ``en``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale
from tests.console.test_review_browser import pending_template

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
ROOT = Path(__file__).resolve().parents[2]
__all__ = ["pending_template"]  # the fixture: a pending change of the silver weekly push's SMS wording

# A code as the console's catalogues spell them: snake_case (template folders, queues, steps, task
# types, outcomes), a dotted event type, a file name, or a locale.
CODE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b|\b[a-z]+\.[a-z_]+\b|\b(?:zh-CN|en)\b")
SHOWN = """() => {
  const main = document.querySelector('main').cloneNode(true);
  // Codes kept as secondary text, and what a page quotes as written: a diff of files, a rendered message.
  main.querySelectorAll('code, pre').forEach(c => c.remove());
  return main.textContent;
}"""


def words_shown(page: Any) -> str:
    """The text of the page's main part, menus' options included, less the codes kept as ``<code>`` and the
    text quoted as written (``<pre>``: a diff under review, a rendered message)."""
    text: str = page.evaluate(SHOWN)
    return text


def assert_words(page: Any, *words: str) -> None:
    text = words_shown(page)
    assert not CODE.findall(text), (page.url, sorted(set(CODE.findall(text))))
    for word in words:
        assert word in text, (page.url, word)
    assert_fits(page)


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_review_pages_name_templates_in_words(new_page: PageFactory, pending_template: int, tmp_path: Path,
                                              device: dict[str, Any]) -> None:
    page = new_page("carol", device, lands_on="**/ops/review")  # compliance, in Chinese
    assert_words(page, "白银每周专属推送")
    page.goto(f"/ops/review/{pending_template}")
    assert_words(page, "白银每周专属推送", "中文")
    assert "silver_weekly_push" not in page.title() and "白银每周专属推送" in page.title()

    broken = tmp_path / "templates" / "birthday_greeting" / "sms.en.j2"  # the fixture's copy of templates/
    broken.write_text("Happy birthday {{ customer.name \n", encoding="utf-8")
    page.goto("/ops/review")
    page.get_by_test_id("submit-changes").click()
    problems = page.get_by_test_id("compile-problems")
    playwright_sync.expect(problems).to_contain_text("生日关怀")
    playwright_sync.expect(problems.locator("li code").first).to_contain_text("birthday_greeting/sms.en.j2:1:")
    assert_words(page, "生日关怀")


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_the_test_send_form_and_the_users_page_show_words(new_page: PageFactory, db_url: str,
                                                          device: dict[str, Any]) -> None:
    set_locale(db_url, "olga", "zh-CN")
    set_locale(db_url, "adam", "zh-CN")
    page = new_page("olga", device, lands_on="**/ops/journeys")
    page.goto("/ops/test-send")
    assert_words(page, "生日关怀", "投诉超时升级（主管）", "中文", "English")
    options = page.get_by_test_id("template").locator("option")
    assert options.count() == len([p for p in (ROOT / "templates").iterdir() if (p / "meta.yaml").is_file()])
    assert page.get_by_test_id("template").locator("option[value='birthday_greeting']").inner_text() == "生日关怀"
    page = new_page("adam", device, lands_on="**/admin/users")
    assert_words(page, "中文", "English")


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_the_task_pages_record_tables_show_words(new_page: PageFactory, seed: Seed, device: dict[str, Any]) -> None:
    """The customer's policies, touches and outcomes (one table macro, ``labels.record_table``): a row per
    record in words, or one row saying there is none across all the columns."""
    page = new_page("bob", device)  # an agent, in Chinese
    page.goto(f"/tasks/{seed.tasks['bob']}")
    policies = page.get_by_test_id("policies")
    playwright_sync.expect(policies.locator("tbody tr")).to_have_count(1)
    playwright_sync.expect(policies.locator("tbody tr td[data-label='险种']")).to_have_text("健康险")
    for empty, columns in (("touches", "5"), ("outcomes", "4")):
        none = page.get_by_test_id(empty).locator("tbody tr.none td")
        playwright_sync.expect(none).to_have_text("暂无内容。")
        playwright_sync.expect(none).to_have_attribute("colspan", columns)
    assert_fits(page)
