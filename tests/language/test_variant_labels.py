"""A split variant's ``label``: what the variant is, 中文 / English like an exit's label, while its ``name``
stays the code reports count entrants by. ``journeys validate`` refuses, at the label's line, a label that cannot
be shown (empty, too long, two lines, an empty half) or a name worded two ways in one journey; every variant
of the shipped journeys has words in both languages."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.language.bilingual import LABEL_MAX
from engine.language.journey_schema import journey_schema
from engine.language.validation import validate
from tests.language import test_exit_labels as exit_labels

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "journeys" / "gold-value-added-services.yaml"
WECHAT = "{name: wechat_first, percent: 45, goto: send_wechat_first, label: 微信优先 / WeChat first}"
EMAIL = "{name: email_first, percent: 45, goto: send_email_first, label: 邮件优先 / Email first}"


def _shipped() -> str:
    text = SHIPPED.read_text(encoding="utf-8")
    assert WECHAT in text and EMAIL in text, "the shipped file changed: update the fixture"
    return text


REFUSED = exit_labels.refused_labels("a variant", "微信优先", "WeChat first", LABEL_MAX)


@pytest.mark.parametrize(("written", "words"), REFUSED, ids=exit_labels.LABEL_CASES_IDS)
def test_a_label_that_cannot_be_shown_is_refused_at_its_line(tmp_path: Path, written: str, words: str) -> None:
    text = _shipped().replace(WECHAT, "{name: wechat_first, percent: 45, goto: send_wechat_first, " + written + "}")
    exit_labels._refused_once_at(tmp_path, text, "name: wechat_first", words, SHIPPED.name)


def _two_splits(label: str) -> str:
    """The shipped journey with a second split, reached by ``email_first``, whose one variant is again
    ``wechat_first``, worded ``label``."""
    text = _shipped().replace("goto: send_email_first,", "goto: again,")
    return text.replace("  - id: send_wechat_first\n", "  - id: again\n    split:\n      variants:\n"
                        f"        - {{name: wechat_first, percent: 100, goto: send_email_first, label: {label}}}\n"
                        "  - id: send_wechat_first\n")


def test_one_name_worded_two_ways_is_refused_at_the_second(tmp_path: Path) -> None:
    text = _two_splits("微信先发 / WeChat before")
    exit_labels._refused_once_at(tmp_path, text, "label: 微信先发",
                                 "variant 'wechat_first' is labelled '微信优先 / WeChat first' "
                                 "at step 'channel_test': one variant, one label", SHIPPED.name)


def test_a_label_of_one_part_the_same_label_twice_and_no_label_are_taken(tmp_path: Path) -> None:
    code, output, _ = exit_labels._validate(tmp_path, _two_splits("微信优先 / WeChat first"), SHIPPED.name)
    assert code == 0, output
    one_part = _shipped().replace("label: 微信优先 / WeChat first}", "label: WeChat first}")
    unlabelled = one_part.replace(", label: 邮件优先 / Email first}", "}")
    code, output, _ = exit_labels._validate(tmp_path, unlabelled, SHIPPED.name)
    assert code == 0, output


def test_every_variant_of_the_shipped_journeys_has_words_in_both_languages() -> None:
    report = validate()
    assert report.ok, [str(p) for p in report.problems]
    variants = [(loaded.journey.id, v) for loaded in report.journeys for step in loaded.journey.steps
                if step.split is not None for v in step.split.variants]
    assert len(variants) >= 5
    for journey_id, variant in variants:
        exit_labels.assert_in_both_languages(variant.label, (journey_id, variant.name))


def test_the_schema_tells_editors_about_the_label() -> None:
    label = journey_schema()["$defs"]["SplitVariant"]["properties"]["label"]
    assert "中文 / English" in label["description"]
    assert label["examples"] == ["短文案 / Short text"]
