"""Words for what the ops pages used to show as codes: an exit's reason (its label in the journey file, the
engine's own reasons from the catalogue, else the code humanised in English and no words in Chinese, where
the page shows the code as a code), what a webhook step records, customer attributes and their values; and
a sentence that takes a code as markup keeps it markup while the rest is escaped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from markupsafe import Markup
from starlette.testclient import TestClient

from console.condition_words import leaf_words
from console.i18n import Translator
from engine.language.validation import validate
from tests.console.conftest import login
from tests.console.test_form_errors import set_locale

ZH, EN = Translator("zh-CN"), Translator("en")
ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.parametrize(("locale", "step_words", "arrow"), [
    ("zh-CN", "退出: <code>callback_done</code>", '出口 <tspan class="code">callback_done</tspan>'),
    ("en", 'Exit: <span title="callback_done">Callback done</span>', "> Callback done<title>"),
])
def test_an_exit_without_a_label_is_its_code_never_a_bare_word(client: TestClient, db_url: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch, locale: str,
                                                                 step_words: str, arrow: str) -> None:
    copy = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys", copy)
    path = copy / "gold-monthly-callback.yaml"
    text = path.read_text(encoding="utf-8")
    assert ", label: 回访已完成 / Callback done}" in text
    path.write_text(text.replace(", label: 回访已完成 / Callback done}", "}"), encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_DIR", str(copy))
    set_locale(db_url, "olga", locale)
    login(client, "olga")
    page = client.get("/ops/journeys/gold-monthly-callback").text
    done = page.split('<tr data-step="done">', 1)[1].split("</th>", 1)[0]
    assert step_words in done
    diagram = page.split('data-testid="diagram"', 1)[1].split("</svg>", 1)[0]
    exit_arrow = diagram.split('class="edge edge-exit"', 1)[1].split("</text>", 1)[0]
    assert arrow in exit_arrow


def test_a_changed_webhook_description_is_shown_and_a_broken_file_names_the_target(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The descriptions are read once per change of the file, not per event shown: an edit shows at once."""
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(tmp_path))
    path = tmp_path / "webhooks.yaml"
    path.write_text("targets:\n  crm:\n    description: 工单系统 / Case system\n"
                    "    url_env: CRM_WEBHOOK_URL\n    secret_env: CRM_WEBHOOK_SECRET\n", encoding="utf-8")
    assert EN.label("event", "webhook.crm.failed") == "System call failed: Case system"
    path.write_text("targets:\n  crm:\n    description: 客服工单系统 / Service desk, a longer name\n"
                    "    url_env: CRM_WEBHOOK_URL\n    secret_env: CRM_WEBHOOK_SECRET\n", encoding="utf-8")
    assert EN.label("event", "webhook.crm.failed") == "System call failed: Service desk, a longer name"
    path.write_text("targets: [not, a, mapping]\n", encoding="utf-8")
    assert EN.label("event", "webhook.crm.failed") == "System call failed: crm"
