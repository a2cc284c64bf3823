"""Fixtures of the language tests: a configuration folder of the test's own, and Chinese SMS
templates written into a folder of the test's own and rendered as the sender renders them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.language.rendering import Renderer, sample_context
from tests.language.test_rendering import write_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped configuration, in force for the test (with a cache folder of its own), to edit."""
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(folder))
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "cache"))
    return folder


class SmsTemplates:
    """Templates with only a Chinese SMS body, and one renderer for them all (no footer): one renderer,
    because what it keeps between renders (Jinja's imported modules) is part of what is tested."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.renderer = Renderer(root, footer="")

    def write(self, **bodies: str) -> None:
        for name, body in bodies.items():
            write_template(self.root, name, {"sms.zh-CN.j2": body})

    def render(self, name: str) -> str:
        return self.renderer.render(name, "sms", sample_context(), "zh-CN").text


@pytest.fixture
def sms(tmp_path: Path) -> SmsTemplates:
    return SmsTemplates(tmp_path / "templates")
