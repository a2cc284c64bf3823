"""``journeys trace``: exactly one of --outcome, --touch, --task; an id with no row is named with its kind."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from engine.cli import build_app


@pytest.mark.parametrize("args", [[], ["--touch", "1", "--task", "2"], ["--outcome", "1", "--touch", "1"]])
def test_trace_takes_exactly_one_row(db_url: str, args: list[str]) -> None:
    result = CliRunner().invoke(build_app(), ["trace", *args])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    assert "give one of --outcome, --touch or --task" in result.stderr


@pytest.mark.parametrize("kind", ["outcome", "touch", "task"])
def test_a_row_not_there_is_named(db_url: str, kind: str) -> None:
    result = CliRunner().invoke(build_app(), ["trace", f"--{kind}", "424242"])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == f"no {kind} 424242"
