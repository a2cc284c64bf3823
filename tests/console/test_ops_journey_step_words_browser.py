"""The ops journey page in Chinese, in real Chromium at 1280 and 390 px, names each step by what it does: a
send by its template and channels, a task by its queue, a wait by its duration or moment, a branch by its
conditions, keeping the step's id only as secondary text (``<code>``). Before, the step table and the
experiments showed the bare ids (``send_wechat_first``), which mean nothing to a Chinese reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.language.journey_model import Journey
from engine.language.validation import validate
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.ops_seed import SPLIT_JOURNEY, seed_activity
from tests.console.test_catalogue_words_browser import CODE
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
ROOT = Path(__file__).resolve().parents[2]
# Each step's words less what they keep in <code> (the id, a split variant's name beside its words, codes nothing
# names: a webhook target without a description); the id is the code in the step's own <small>, after its words.
WORDS = """els => els.map(el => {
  const copy = (el.querySelector('[data-k=step-words]') || el).cloneNode(true);
  copy.querySelectorAll('code').forEach(c => c.remove());
  const id = el.querySelector(':scope > small > code');
  return [el.closest('[data-step]').dataset.step, copy.textContent.trim(), id && id.textContent];
})"""


def _shipped() -> list[Journey]:
    return [loaded.journey for loaded in validate().journeys]


def _assert_step_words(page: Any, selector: str, journey: Journey) -> list[str]:
    """The words of each step of ``journey`` shown at ``selector`` (rows of steps no longer in it, which
    counts from the database may add, have no words to give and keep their id)."""
    ids = {step.id for step in journey.steps}
    rows: list[list[str]] = [row for row in page.locator(selector).evaluate_all(WORDS) if row[0] in ids]
    assert rows, (page.url, selector)
    for step_id, words, code in rows:
        assert code == step_id, (page.url, step_id)
        assert words and not CODE.findall(words), (page.url, step_id, words)
        assert step_id not in words, (page.url, step_id, words)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in words), (page.url, step_id, words)
    return [words for _, words, _ in rows]


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_journey_pages_name_steps_in_words(new_page: PageFactory, seed: Seed, db_url: str,
                                           device: dict[str, Any]) -> None:
    seed_activity(db_url, list(seed.customers.values()), seed.now)  # the split journey's experiment
    set_locale(db_url, "olga", "zh-CN")
    page = new_page("olga", device, lands_on="**/ops/journeys")
    shown: dict[str, list[str]] = {}
    journeys = {journey.id: journey for journey in _shipped()}
    for journey in journeys.values():
        page.goto(f"/ops/journeys/{journey.id}")
        shown[journey.id] = _assert_step_words(page, "[data-testid=step-counts] tbody tr[data-step] > th", journey)
        assert len(shown[journey.id]) == len(journey.steps)
        assert_fits(page)
    # One of each kind, as the catalogue and the files word them.
    assert "发送: 白银每周专属推送 · 按互动程度选择渠道" in shown["silver-weekly-push"]
    assert any("下一个工作日 10:00" in w for w in shown["premium-due-reminder"])
    assert any(w.startswith("等待: ") and "天" in w for w in shown["premium-due-reminder"])
    assert any(w.startswith("条件分支: ") and "等级" in w for ws in shown.values() for w in ws)
    assert any(w.startswith("坐席任务: ") for ws in shown.values() for w in ws)

    page.goto(f"/ops/journeys/{SPLIT_JOURNEY}")
    (heading,) = _assert_step_words(page, "[data-testid=experiment] h3", journeys[SPLIT_JOURNEY])
    assert heading.startswith("随机分流: ")
