"""The CLI prints what it reports literally: a problem on line 100 or 1234 reads ``file:100:3:`` and
``file:1234:3:``, not Rich's emoji for the codes ``:100:`` and ``:1234:`` (it had printed
``file💯3``), so that editors and scripts can follow ``file:line:col``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("line", [100, 1234])
def test_a_problem_line_is_printed_as_a_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: int) -> None:
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "cache"))
    text = (ROOT / "journeys" / "silver-weekly-push.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("priority:"))
    lines[at] = "priority: high"
    padded = lines[:at] + ["#"] * (line - 1 - at) + lines[at:]
    path = tmp_path / "silver-weekly-push.yaml"
    path.write_text("\n".join(padded) + "\n", encoding="utf-8")
    result = CliRunner().invoke(build_app(), ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:{line}:11: wrong type for 'priority'" in result.output, result.output


def test_a_one_step_journey_is_said_to_have_one_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "cache"))
    text = (ROOT / "journeys" / "monthly-nps-survey.yaml").read_text(encoding="utf-8")
    one = text[:text.index("  - id: done")]  # the send alone: a journey ends after its last step
    path = tmp_path / "monthly-nps-survey.yaml"
    path.write_text(one, encoding="utf-8")
    result = CliRunner().invoke(build_app(), ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert " · 1 step (send)" in result.output, result.output
    two = CliRunner().invoke(build_app(), ["validate", str(ROOT / "journeys" / "monthly-nps-survey.yaml")])
    assert " · 2 steps (send, exit)" in two.output, two.output
