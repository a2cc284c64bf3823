"""``python -m tests`` (the README's test command) spreads the tests over one worker per core unless the caller
chose a worker count of their own, and the tests see no terminal size of whoever runs them."""

from __future__ import annotations

import os

import pytest

from tests.__main__ import pytest_args, workers


def test_the_worker_count_is_one_per_usable_core_at_most_four() -> None:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    assert workers() == min(4, usable)


@pytest.mark.parametrize("given", [["-n", "0"], ["-n0"], ["-n=3"], ["--numprocesses", "2"], ["--numprocesses=auto"],
                                   ["-p", "no:xdist"]])
def test_a_worker_count_given_is_kept_as_given(given: list[str]) -> None:
    assert pytest_args([*given, "tests/cli"]) == [*given, "tests/cli"]


def test_otherwise_the_files_go_to_the_workers_whole() -> None:
    args = pytest_args(["-x", "tests/cli"])
    if workers() < 2:
        assert args == ["-x", "tests/cli"]
    else:
        assert args == ["-n", str(workers()), "--dist", "loadfile", "-x", "tests/cli"]


def test_the_tests_see_no_terminal_size() -> None:
    # xdist's workers start with COLUMNS=80; the CLI's tables would be laid out for it (tests/conftest.py).
    assert "COLUMNS" not in os.environ and "LINES" not in os.environ
