"""A Chinese call script names the outcomes to record by the words on the page's outcome buttons.

The shipped scripts listed them as codes with a gloss (``- no_answer: 未接通``), so every Chinese task page
showed an agent reached/no_answer/call_back/complaint_raised beside buttons reading 已接通, 未接通 and
约定时间回拨. Each script now names the button (「约定时间回拨」) and keeps its own explanation.
"""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

from starlette.testclient import TestClient

from console.i18n import Translator
from tests.console.conftest import Seed, login

ROOT = Path(__file__).resolve().parents[2]
CODE = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b|\b(?:reached|resolved)\b")


def test_the_task_page_shows_the_script_with_the_buttons_words(client: TestClient, seed: Seed) -> None:
    login(client, "bob")  # Chinese; his claimed task's script is gold_monthly_callback
    page = client.get(f"/tasks/{seed.tasks['bob']}").text
    script = unescape(page.split('data-testid="script">')[1].split("</pre>")[0])
    assert CODE.findall(script) == []
    for word in ("「已接通」", "「未接通」", "「约定时间回拨」", "「客户投诉」", "「已解决」"):
        assert word in script


def test_no_chinese_call_script_lists_an_outcome_by_its_code() -> None:
    words = Translator("zh-CN")
    scripts = sorted((ROOT / "templates").glob("*/task.zh-CN.j2"))
    assert len(scripts) >= 20
    for path in scripts:
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [line for line in lines if re.match(r"- [a-z_]+: ", line)] == [], path
        listed = [line for line in lines if line.startswith("- 「")]
        named = {line[3:].split("」")[0] for line in listed}
        assert {words.label("outcome", c) for c in ("reached", "no_answer", "wrong_number", "call_back")} <= named, path
