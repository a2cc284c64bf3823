"""``journeys review show|approve|reject|rollback ID``: an id no row can have (0, negative, past a
signed 64-bit integer) is refused as a bad argument in one line, exit 2, instead of SQLite's
OverflowError traceback; the largest id a row can have is looked up and not found."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from engine.cli import build_app


@pytest.mark.parametrize("args", [
    ["review", "show", "99999999999999999999"],
    ["review", "show", "9223372036854775808"],
    ["review", "show", "0"],
    ["review", "approve", "99999999999999999999", "--as", "x", "-m", "y"],
    ["review", "reject", "-5", "--as", "x", "-m", "y"],
    ["review", "rollback", "18446744073709551616", "--as", "x", "-m", "y"],
])
def test_an_id_no_row_can_have_is_a_bad_argument(db_url: str, args: list[str]) -> None:
    result = CliRunner().invoke(build_app(), args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 2, result.output
    assert "version_id" in result.output or "No such option: -5" in result.output


def test_the_largest_row_id_is_looked_up(db_url: str) -> None:
    result = CliRunner().invoke(build_app(), ["review", "show", "9223372036854775807"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code != 0 and "no journey version 9223372036854775807" in result.output
