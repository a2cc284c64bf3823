"""Coded values of an event's data are shown in the words config/events.yaml gives them: on the task page's
reason and in a condition's words, in both languages, for any value authors add to the file (no developer).

Before, the console had its own table of these words, which missed values the file words (a complaint of
severity ``medium`` read "medium" to a Chinese agent) and could not know a value added to the file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from console.condition_words import value_words
from console.events_bridge import emit
from console.i18n import Translator
from engine.language import event_types
from store.db import session_scope
from store.models import AgentTask, Event
from tests.console.conftest import Seed, login

ROOT = Path(__file__).resolve().parents[2]
ZH, EN = Translator("zh-CN"), Translator("en")


def test_every_value_the_file_words_is_shown_in_its_words_in_both_languages() -> None:
    checked = 0
    for event_type, spec in event_types.current().items():
        for name, words in spec.words.items():
            if isinstance(words, str):  # a vocabulary the console words itself
                sample = {"tier": "gold", "product_line": "health"}[words]
                assert ZH.event_value(name, sample, event_type) == ZH.label(words, sample) != sample
                assert EN.event_value(name, sample, event_type) == EN.label(words, sample)
                continue
            for value, said in words.items():
                assert ZH.event_value(name, value, event_type) == said.zh_cn, (event_type, name, value)
                assert EN.event_value(name, value, event_type) == said.en, (event_type, name, value)
                # A condition names no type: the words of whichever type has them.
                assert value_words(ZH, f"event.data.{name}", "eq", value) == said.zh_cn
                checked += 1
    assert checked >= 20
    assert ZH.event_value("channel", "wechat") == ZH.label("channel", "wechat") == "微信"
    assert ZH.event_value("severity", "unheard_of", "complaint.filed") == "unheard of"


def _task_page(client: TestClient, db_url: str, severity: str, event_id: str) -> dict[str, str]:
    emit("complaint.filed", "C1", {"category": "billing", "severity": severity, "source": "branch", "text": "请回电"},
         event_id=event_id, db_url=db_url)
    with session_scope(db_url) as s:
        event = s.exec(select(Event).where(Event.external_id == event_id)).one()
        task = s.exec(select(AgentTask).where(AgentTask.occurrence == f"event-{event.id}")).one()
    shown: dict[str, str] = {}
    for user in ("bob", "ann"):  # zh-CN, en
        login(client, user)
        page = client.get(f"/tasks/{task.id}").text
        cell = re.search(r'data-testid="reason-severity">(.*?)</dd>', page, re.S)
        assert cell is not None, page[:2000]
        shown[user] = cell.group(1).strip()
        client.post("/logout")
    return shown


def test_the_task_page_says_a_severity_in_the_files_words(client: TestClient, seed: Seed, db_url: str) -> None:
    assert _task_page(client, db_url, "medium", "cmp-medium") == {"bob": "中", "ann": "Medium"}


def test_a_value_added_to_the_file_is_shown_in_its_words(client: TestClient, seed: Seed, db_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    events = config / "events.yaml"
    text = events.read_text(encoding="utf-8")
    added = "      urgent: {zh-CN: 紧急, en: Urgent}\n      critical: {zh-CN: 危急, en: Critical}\n"
    events.write_text(text.replace("      urgent: {zh-CN: 紧急, en: Urgent}\n", added, 1), encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    assert _task_page(client, db_url, "critical", "cmp-critical") == {"bob": "危急", "ann": "Critical"}
    assert value_words(ZH, "event.data.severity", "in", ["critical", "low"]) == "危急、低"
