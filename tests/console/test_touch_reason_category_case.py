"""An English reason names a touch's category inside its sentence in lower case, as the Chinese one reads.

The category was put in as its column label ("Marketing"), so the task page read "...; Marketing touches may
be at most 1 day late" and "...; a Marketing touch is not moved to another channel". The texts come from
their writers (engine.sending.expiry, channels.routing).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from channels.routing import reroute_without_consent
from console.i18n import Translator
from engine.language.settings_model import DeliveryConfig
from engine.sending.claiming import ClaimedTouch
from engine.sending.expiry import expired
from engine.sending.journey_rules import JourneyRules

DUE = datetime(2027, 3, 2, 2, 0, tzinfo=UTC)


def test_a_category_inside_a_reason_is_lower_case_in_english_and_words_in_chinese() -> None:
    touch = ClaimedTouch(1, "k", 1, "weekly-push", "s0", "o", "marketing", False, "sms", [], "t", 1, DUE)
    late = expired(touch, DUE + timedelta(days=2, minutes=30), DeliveryConfig(), JourneyRules())
    assert late is not None and late.error_reason is not None
    opted_out = reroute_without_consent("marketing", "sms", ["email"], lambda c: True, "opted out of sms").reason
    en, zh = Translator("en"), Translator("zh-CN")
    assert en.touch_reason(late.error_reason) == (
        "Too late to send: 2 days 30 minutes after its due time; marketing touches may be at most 1 day late")
    assert "a marketing touch is not moved" in en.touch_reason(opted_out)
    assert "营销类触达最多只能晚1天" in zh.touch_reason(late.error_reason)
    assert "营销类触达不转到其他渠道" in zh.touch_reason(opted_out)
