"""Standard JSON from outside is bounded in depth: a value nested deeper than 64 levels is refused
as malformed JSON, by ``journeys event emit --data`` with one line, instead of Python's parser's
RecursionError (100,000 ``[``) or a value that fails wherever it is next written out."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from store.standard_json import MAX_DEPTH, strict_loads


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500, 100_000])
def test_too_deep_is_refused(depth: int) -> None:
    with pytest.raises(json.JSONDecodeError, match=f"nested deeper than {MAX_DEPTH} levels"):
        strict_loads("[" * depth + "]" * depth)
    with pytest.raises(json.JSONDecodeError, match="nested deeper"):
        strict_loads(('{"a":' * depth + "1" + "}" * depth).encode())


def test_as_deep_as_the_bound_is_read() -> None:
    assert strict_loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_event_emit_refuses_deep_data_in_one_line(db_url: str) -> None:
    deep = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    result = CliRunner().invoke(build_app(), ["event", "emit", "app.login", "--customer", "C1", "--data", deep])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 2
    assert "nested deeper than 64 levels" in result.output
