"""A split's variants in words on the ops journey page, in the reader's language: the label the journey file gives
a variant (Translator.variant), its name kept beside it as a code in the step table and the experiments' table,
in the tooltip on the diagram's box and arrows and in the experiments' verdicts; the control group by the
console's word for it. A variant with no label is its name as a code in both languages, never a bare word."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from console.i18n import Translator
from engine.language.validation import validate
from tests.console.conftest import Seed, login
from tests.console.ops_seed import seed_activity
from tests.console.test_form_errors import set_locale

ZH, EN = Translator("zh-CN"), Translator("en")
ROOT = Path(__file__).resolve().parents[2]
JOURNEY = "gold-value-added-services"


@pytest.mark.parametrize(("t", "label", "words"), [
    (ZH, "微信优先 / WeChat first", "微信优先"),
    (EN, "微信优先 / WeChat first", "WeChat first"),
    (ZH, "WeChat first", "WeChat first"),  # a label of one part, in both languages
    (ZH, None, ""),
    (EN, None, ""),  # no humanised name: "wechat first" would read as words the author never wrote
])
def test_a_variant_in_words(t: Translator, label: str | None, words: str) -> None:
    assert t.variant(label) == words


def test_every_shipped_variant_has_chinese_words_of_its_own() -> None:
    for loaded in validate().journeys:
        for step in loaded.journey.steps:
            for variant in step.split.variants if step.split is not None else ():
                words = ZH.variant(loaded.journey.variant_label(variant.name))
                assert words and variant.name not in words and "_" not in words, (loaded.journey.id, variant.name)


def _page(client: TestClient, db_url: str, locale: str) -> str:
    set_locale(db_url, "olga", locale)
    login(client, "olga")
    return client.get(f"/ops/journeys/{JOURNEY}").text


def _part(page: str, start: str, end: str) -> str:
    return page.split(start, 1)[1].split(end, 1)[0]


def _worded(words: str, name: str) -> str:
    return f'<span data-k="variant" data-code="{name}">{words} <small><code>{name}</code></small></span>'


def _in_a_sentence(words: str, name: str) -> str:
    return f'<span data-k="variant" data-code="{name}" title="{name}">{words}</span>'


@pytest.mark.parametrize(("locale", "wechat", "email", "variant", "holdout", "worse"), [
    ("zh-CN", "微信优先", "邮件优先", "分组", "对照组", "{group}的回复不如{baseline}"),
    ("en", "WeChat first", "Email first", "variant", "Holdout", "{group} worse than {baseline} in Reply"),
])
def test_the_journey_page_names_variants_by_their_words(client: TestClient, seed: Seed, db_url: str, locale: str,
                                                        wechat: str, email: str, variant: str, holdout: str,
                                                        worse: str) -> None:
    seed_activity(db_url, list(seed.customers.values()), seed.now)
    page = _page(client, db_url, locale)
    sep = "、" if locale == "zh-CN" else ", "
    split_words = f"{_worded(wechat, 'wechat_first')} 45%{sep}{_worded(email, 'email_first')} 45%{sep}{holdout} 10%"
    # the step table, and the diagram's box (one line: the names there are hidden by CSS, kept in the tooltip)
    assert split_words in _part(page, '<tr data-step="channel_test">', "</tr>")
    box = _part(page, '<g class="node node-split" data-step="channel_test">', "</g>")
    assert f'data-k="step-words">{Translator(locale)("Random split")}: {split_words}' in box
    assert f"{wechat} wechat_first 45%" in _part(box, "<title>", "</title>")
    # the diagram's arrows: the words, the name in the tooltip
    diagram = _part(page, 'data-testid="diagram"', "</svg>")
    for words, name in ((wechat, "wechat_first"), (email, "email_first")):
        assert (f'class="edge-label" data-code="{name}">{variant} {words} 45%<title>{variant} {words} 45% ({name})'
                f"</title>") in diagram
    # the experiments: the verdict (the names in the tooltips) and the table (the names beside the words)
    experiment = _part(page, 'data-testid="experiment"', "</section>")
    said = worse.format(group=_in_a_sentence(email, "email_first"), baseline=_in_a_sentence(wechat, "wechat_first"))
    assert said in experiment
    assert f'<tr data-group="wechat_first"><th>{_worded(wechat, "wechat_first")}</th>' in experiment
    assert f'<tr data-group="holdout"><th>{holdout}</th>' in experiment


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_a_variant_without_a_label_is_its_name_as_a_code(client: TestClient, db_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, locale: str) -> None:
    copy = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys", copy)
    path = copy / f"{JOURNEY}.yaml"
    text = path.read_text(encoding="utf-8")
    assert ", label: 微信优先 / WeChat first}" in text
    path.write_text(text.replace(", label: 微信优先 / WeChat first}", "}"), encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_DIR", str(copy))
    page = _page(client, db_url, locale)
    bare = '<span data-k="variant" data-code="wechat_first"><code>wechat_first</code></span>'
    assert f"{bare} 45%" in _part(page, '<tr data-step="channel_test">', "</tr>")
    diagram = _part(page, 'data-testid="diagram"', "</svg>")
    assert '<tspan class="code">wechat_first</tspan> 45%' in diagram
    assert f'<tr data-group="wechat_first"><th>{bare}</th>' in _part(page, 'data-testid="experiment"', "</section>")
    # the other variant keeps its words
    assert _worded("邮件优先" if locale == "zh-CN" else "Email first", "email_first") in page
