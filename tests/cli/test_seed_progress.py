"""``journeys seed`` in a pipe or a log says how far it is while a large book is written (stderr), as
the report and the demo do (engine.loop.progress.Steps); a live bar is not drawn there."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from engine.demo.seeding import SeedStats


def test_a_long_seed_prints_progress_outside_a_terminal(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_seed(url: str, customers: int, seed: int = 0, *, progress: Callable[[int], None] | None = None,
                  **_: Any) -> SeedStats:
        assert progress is not None
        progress(customers // 2)
        time.sleep(2.5)  # past the first progress line (Steps: after 2 s)
        progress(customers - customers // 2)
        return SeedStats(customers=customers, first_number=1, last_number=customers, seconds=2.5)

    monkeypatch.setattr("engine.demo.seeding.seed_book", slow_seed)
    result = CliRunner().invoke(build_app(), ["seed", "--customers", "1000"])
    assert result.exit_code == 0, result.output
    assert "seed: 500 of 1,000 customers" in result.stderr, result.stderr
    assert result.stdout.startswith("seeded 1000 customers"), result.stdout
