"""A touch dropped as too late (``engine.sending.expiry``) reads on a page in the reader's language, from
the reason's code and parameters, as every other reason does: a Chinese page shows no English, no code and
no duration as typed. The texts come from the writer itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from console.i18n import Translator
from engine.language.settings_model import DeliveryConfig
from engine.sending.claiming import ClaimedTouch
from engine.sending.expiry import expired
from engine.sending.journey_rules import JourneyRules
from store.touch_reasons import parse

LATIN = re.compile(r"[A-Za-z_]{2,}|\d+[wdhm]\b|\d{4}-\d{2}-\d{2}")
DUE = datetime(2027, 3, 2, 2, 0, tzinfo=UTC)


def _reason(journey: str, category: str, rules: JourneyRules) -> str:
    touch = ClaimedTouch(1, "k", 1, journey, "s0", "o", category, False, "sms", [], "t", 1, DUE)
    result = expired(touch, DUE + timedelta(days=2, minutes=30), DeliveryConfig(), rules)
    assert result is not None and result.error_reason is not None
    return result.error_reason


def test_a_touch_too_late_to_send_is_worded_in_chinese_and_english() -> None:
    by_category = _reason("weekly-push", "marketing", JourneyRules())
    by_journey = _reason("birthday-care", "service", JourneyRules(expire_after={"birthday-care": timedelta(hours=12)}))
    assert [getattr(parse(t), "code", None) for t in (by_category, by_journey)] == ["expired", "expired"]
    zh, en = Translator("zh-CN"), Translator("en")
    names = {"birthday-care": "生日关怀"}
    shown = [zh.touch_reason(t, journey_name=names.__getitem__) for t in (by_category, by_journey)]
    assert shown == ["发送时已过期：比预定时间晚了2天30分钟，营销类触达最多只能晚1天",
                     "发送时已过期：比预定时间晚了2天30分钟，旅程「生日关怀」最多只能晚12小时"]
    assert not any(LATIN.search(s) for s in shown)
    assert en.touch_reason(by_journey, journey_name=lambda j: "Birthday care") == (
        "Too late to send: 2 days 30 minutes after its due time; journey “Birthday care” allows at most 12 hours")
