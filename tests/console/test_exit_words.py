"""Words for what the ops pages used to show as codes: an exit's reason (its label in the journey file, the
engine's own reasons from the catalogue, else the code humanised in English and no words in Chinese, where
the page shows the code as a code), what a webhook step records, customer attributes and their values; and
a sentence that takes a code as markup keeps it markup while the rest is escaped."""

from __future__ import annotations

import pytest
from markupsafe import Markup

from console.condition_words import leaf_words
from console.i18n import Translator
from engine.language.validation import validate

ZH, EN = Translator("zh-CN"), Translator("en")


@pytest.mark.parametrize(("t", "reason", "label", "words"), [
    (ZH, "callback_done", "回访已完成 / Callback done", "回访已完成"),
    (EN, "callback_done", "回访已完成 / Callback done", "Callback done"),
    (ZH, "renewed", "Renewed", "Renewed"),  # a label of one part, in both languages
    (ZH, "goal", None, "达成目标"),
    (EN, "anonymised", None, "The customer was anonymised (retention period over)"),
    (EN, "case_by_hand", None, "Case by hand"),
    (ZH, "case_by_hand", None, ""),
])
def test_an_exit_reason_in_words(t: Translator, reason: str, label: str | None, words: str) -> None:
    assert t.exit_reason(reason, label) == words


def test_every_shipped_exit_has_chinese_words_of_its_own() -> None:
    for loaded in validate().journeys:
        for step in loaded.journey.steps:
            if step.exit is not None:
                words = ZH.exit_reason(step.exit.reason, loaded.journey.exit_label(step.exit.reason))
                assert words and step.exit.reason not in words and "_" not in words, (loaded.journey.id, step.id)


def test_a_webhook_steps_events_are_named_by_the_target_they_call() -> None:
    assert ZH.label("event", "webhook.crm.succeeded") == "外部系统调用成功：客户关系管理系统：开立服务工单"
    assert EN.label("event", "webhook.crm.failed") == "System call failed: CRM, opens a service case"
    assert EN.label("event", "webhook.nowhere.failed") == "System call failed: nowhere"


def test_attributes_and_their_values_in_words() -> None:
    assert leaf_words(ZH, "customer.attributes.service_preference", "eq", "travel") == "服务偏好为出行"
    assert leaf_words(EN, "customer.attributes.care_pack_sent", "eq", True) == "Care pack sent is yes"
    assert leaf_words(EN, "customer.attributes.vip_since", "exists", None) == "Attribute vip_since is known"


def test_a_code_passed_as_markup_stays_markup_and_the_rest_is_escaped() -> None:
    said = EN("%(group)s: not enough data yet.", group=Markup("<code>a&b</code>"))
    assert isinstance(said, Markup) and str(said) == "<code>a&b</code>: not enough data yet."
    assert str(EN("%(group)s: not enough data yet.", group="<b>")) == "<b>: not enough data yet."
