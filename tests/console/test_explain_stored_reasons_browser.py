"""The explain page says why a stored touch was not sent in the reader's words, as the task and journey pages do.

It read a stored touch's reason by its delivery rule alone, so the three reasons dispatch writes without one
showed as the engine's English on the Chinese page: a touch too late to send after downtime (its rule cell
read the code ``expired``, its reason "expired: due 2026-11-20 02:00 UTC, 2d30m late; ..."), one withdrawn
because its journey was edited ("journey renewal-reminder edited: planned again under the version in force")
and one whose journey's file was removed ("... no longer in force"). The reasons come from their writers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from console.i18n import Translator
from engine.language.journey_edits import Edition
from engine.language.settings_model import DeliveryConfig
from engine.sending.claiming import ClaimedTouch
from engine.sending.expiry import expired
from engine.sending.journey_rules import JourneyRules
from engine.sending.sendable import unsendable
from store.db import session_scope
from store.models import Customer, Touch
from store.touch_reasons import RULE_SHAPES
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_explain_reasons import LATIN
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
JOURNEY = "renewal-reminder"


def _claimed(due: datetime, category: str = "marketing") -> ClaimedTouch:
    return ClaimedTouch(1, "k", 1, JOURNEY, "reminder", "o", category, False, "sms", [], "t", 1, due,
                        journey_version="old", planned_for=due)


def _reasons(due: datetime) -> list[tuple[str, str]]:
    """(status, reason) of each touch, as dispatch stores them."""
    late = due + timedelta(days=2, minutes=30)
    by_category = expired(_claimed(due), late, DeliveryConfig(), JourneyRules())
    by_journey = expired(_claimed(due, "service"), late, DeliveryConfig(),
                         JourneyRules(expire_after={JOURNEY: timedelta(hours=12)}))
    customer = Customer(external_id="X", name="x", tier="gold")
    edited = unsendable(_claimed(due), customer, {},
                        JourneyRules(editions={JOURNEY: Edition("new", due - timedelta(days=1))}))
    gone = unsendable(_claimed(due), customer, {}, JourneyRules(retired=frozenset({JOURNEY})))
    results = [by_category, by_journey, edited, gone]
    assert all(r is not None and r.error_reason for r in results)
    return [("dropped", by_category.error_reason), ("dropped", by_journey.error_reason),  # type: ignore[union-attr,list-item]
            ("cancelled", edited.error_reason), ("cancelled", gone.error_reason)]  # type: ignore[union-attr,list-item]


WORDS = {
    "zh-CN": ("发送时已过期", ["发送时已过期：比预定时间晚了2天30分钟，营销类触达最多只能晚1天",
                          "发送时已过期：比预定时间晚了2天30分钟，旅程「续保提醒」最多只能晚12小时",
                          "旅程「续保提醒」在此触达计划后被修改：已按新版本重新计划",
                          "旅程「续保提醒」已不再生效：其文件已删除"]),
    "en": ("Too late to send", ["Too late to send: 2 days 30 minutes after its due time",
                                "journey “Renewal reminder” allows at most 12 hours",
                                "Journey “Renewal reminder” was edited after this touch was planned",
                                "Journey “Renewal reminder” is no longer in force: its file was removed"]),
}


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_the_explain_page_words_a_late_an_edited_and_a_removed_journeys_touch(
        new_page: PageFactory, seed: Seed, db_url: str, locale: str, device: dict[str, Any]) -> None:
    due = seed.now - timedelta(hours=2)
    with session_scope(db_url) as s:
        for n, (status, reason) in enumerate(_reasons(due)):
            s.add(Touch(key=f"why:{n}", customer_id=seed.customers["C1"], journey_id=JOURNEY, journey_version="old",
                        step_id="reminder", occurrence=str(n), category="marketing", channel="sms", template="t",
                        planned_for=due, due_at=due, status=status, error_reason=reason, created_at=due))
    set_locale(db_url, "olga", locale)
    page = new_page("olga", device, lands_on="**/ops/**")
    page.goto(f"/ops/explain?customer=C1&at={seed.now:%Y-%m-%dT%H:%M}")
    why = page.get_by_test_id("explain-touches").locator("[data-k=why]")
    expect(why).to_have_count(4)
    rule, reasons = WORDS[locale]
    cells = why.all_inner_texts()
    assert [c.split("\n")[0] for c in cells if "\n" in c] == [rule, rule], cells
    text = "\n".join(cells)
    for words in reasons:
        assert words in text, (words, cells)
    if locale == "zh-CN":
        assert not LATIN.search(text), cells
    assert "expired" not in text and "UTC" not in text and JOURNEY not in text, cells
    assert_fits(page)


def test_every_rule_a_stored_touch_names_has_words() -> None:
    """The rule cell words the rule a stored reason starts with; ``expired`` had none (shown as "Expired")."""
    zh, en = Translator("zh-CN"), Translator("en")
    for rule in RULE_SHAPES:
        assert not LATIN.search(zh.label("rule", rule)), rule
        assert en.label("rule", rule) != rule.replace("_", " ").capitalize(), rule
