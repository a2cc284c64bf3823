"""A long report shows its progress: every step is announced to the progress display as it starts,
and the display names the running step (a bar on a terminal, lines now and then in a pipe)."""

from __future__ import annotations

import io
import time

from rich.console import Console

from engine.loop.metrics import compute_metrics, metric_steps
from engine.loop.progress import Steps
from engine.loop.reports import build_report, report_steps
from store.db import session_scope
from tests.closed_loop_book import END, NOW, START, build


def test_every_step_of_a_report_is_announced(db_url: str) -> None:
    with session_scope(db_url) as session:
        build(session)
    for by in (None, "tier", "journey"):
        seen: list[str] = []
        compute_metrics(START, END, by, now=NOW, url=db_url, progress=seen.append)
        assert len(seen) == metric_steps(by) and len(set(seen)) == len(seen)
        seen.clear()
        build_report(START, END, by, now=NOW, url=db_url, progress=seen.append)
        assert len(seen) == report_steps(by)
    assert "tasks by tier" in seen and "NPS trend" in seen


def _until(text: str, buffer: io.StringIO) -> None:
    """Wait for ``text`` to be written (the display's thread writes it); generous, and not a timing check."""
    deadline = time.monotonic() + 60
    while text not in buffer.getvalue():
        assert time.monotonic() < deadline, buffer.getvalue()
        time.sleep(0.01)


def test_in_a_pipe_the_running_step_is_named_while_it_lasts() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=120)
    with Steps(console, "report", total=3, first=0.0, every=0.01) as steps:
        steps("touches")
        _until("… report: touches (1/3)", buffer)
        steps("tasks")
        _until("… report: tasks (2/3)", buffer)
    written = buffer.getvalue()
    time.sleep(0.05)
    assert buffer.getvalue() == written  # its thread has ended with the work: nothing more is written


def test_on_a_terminal_a_bar_shows_the_step() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with Steps(console, "report", total=2) as steps:
        steps("first touch by tier")
        console.print("a line printed meanwhile")
    assert "report: first touch by tier" in buffer.getvalue() and "a line printed meanwhile" in buffer.getvalue()
