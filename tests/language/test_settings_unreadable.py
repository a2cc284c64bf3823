"""A settings file that cannot be read as text (saved as GBK, a stray byte, a pipe) lands nothing:
the planner, the event loop and the console keep the settings in force instead of failing with a
UnicodeDecodeError, and ``journeys validate`` names the file, line and byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language.settings_review import in_force_settings
from store.db import make_engine
from tests.review_support import config_copy


@pytest.mark.parametrize("spoil", ["gbk", "pipe"])
def test_an_unreadable_settings_file_keeps_the_version_in_force(db_url: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch, spoil: str) -> None:
    config = config_copy(tmp_path, monkeypatch)
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "cache"))
    engine = make_engine(db_url)
    try:
        before = in_force_settings(engine)["tiers.yaml"]
        tiers = config / "tiers.yaml"
        if spoil == "gbk":
            tiers.write_bytes(tiers.read_bytes().replace(b"  gold: 50", "  黄金: 50".encode("gbk")))
        else:
            tiers.unlink()
            os.mkfifo(tiers)  # opening it to read would wait for a writer
        assert in_force_settings(engine)["tiers.yaml"] == before
    finally:
        engine.dispose()
    if spoil == "gbk":
        result = CliRunner().invoke(build_app(), ["validate"])
        assert result.exit_code == 1
        line = next(n for n, text in enumerate(tiers.read_bytes().split(b"\n"), start=1) if text.endswith(b": 50")
                    and not text.strip().startswith(b"gold"))
        assert f"tiers.yaml:{line}:3: not UTF-8 text: byte 0xbb" in result.output, result.output
