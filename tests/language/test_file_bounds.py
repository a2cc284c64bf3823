"""``journeys validate`` reads at most a journey file's bound of whatever it is pointed at: a pipe
or a device (``/dev/zero``) is refused unread, and a huge file is refused after its first 256 KB,
each as a problem at the file, instead of a read that never ends or takes all memory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app

runner = CliRunner()


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "cache"))


def validate(path: Path) -> tuple[int, str]:
    result = runner.invoke(build_app(), ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_a_pipe_is_refused_unread(tmp_path: Path) -> None:
    pipe = tmp_path / "journey.yaml"
    os.mkfifo(pipe)  # opening it to read would wait for a writer that never comes
    code, output = validate(pipe)
    assert code == 1
    assert f"{pipe}:1:1: not a regular file" in output


def test_a_device_is_refused_unread(tmp_path: Path) -> None:
    link = tmp_path / "journey.yaml"
    link.symlink_to("/dev/zero")  # reading it never ends
    code, output = validate(link)
    assert code == 1
    assert f"{link}:1:1: not a regular file" in output


def test_a_huge_file_is_refused_after_its_bound(tmp_path: Path) -> None:
    huge = tmp_path / "journey.yaml"
    with huge.open("wb") as handle:  # sparse: 8 GB on paper, nothing on disk
        handle.truncate(8 * 1024 ** 3)
    code, output = validate(huge)
    assert code == 1
    assert f"{huge}:1:1: file larger than 256 KB" in output
