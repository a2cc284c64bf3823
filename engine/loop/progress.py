"""Progress shown while a long step runs: a Rich bar on a terminal, periodic lines anywhere else.

A report over a large book, the demo's seeding or Prefect's start can take minutes; a command
that prints nothing meanwhile looks hung. ``Steps`` shows which step is running and for how long:
on a terminal a live bar (or a spinner when the number of steps is not known); in a pipe or a
log, where a live display would write control codes, one line after ``first`` seconds and then
one every ``every`` seconds while the work lasts, nothing for work that ends sooner.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Steps:
    """``with Steps(console, "report", total=16) as steps: steps("touches by tier"); ...``

    Call the object as each step starts; ``total`` is the number of calls to come (None: unknown).
    """

    def __init__(self, console: Console, title: str, total: int | None = None, *, first: float = 2.0,
                 every: float = 10.0, indent: str = "    ") -> None:
        self.console, self.title, self.total = console, title, total
        self.first, self.every, self.indent = first, every, indent
        self.label = ""
        self.done = 0
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Steps:
        self._started = time.monotonic()
        if self.console.is_terminal:
            columns = [SpinnerColumn(), TextColumn(f"{self.indent}{self.title}: {{task.description}}")]
            if self.total is not None:
                columns += [BarColumn(), MofNCompleteColumn()]
            self._bar = Progress(*columns, TimeElapsedColumn(), console=self.console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task("", total=self.total)
        else:
            self._thread = threading.Thread(target=self._beat, name=f"progress-{self.title}", daemon=True)
            self._thread.start()
        return self

    def __call__(self, label: str) -> None:
        """The next step starts (the previous one, if any, is done)."""
        if self.label:
            self.done += 1
        self.label = label
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=label, completed=self.done)

    def note(self, label: str) -> None:
        """What the current step is doing now, without counting a step."""
        self.label = label
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=label)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._started

    def _beat(self) -> None:
        wait = self.first
        while not self._stop.wait(wait):
            count = f" ({self.done + 1}/{self.total})" if self.total is not None and self.label else ""
            doing = f": {self.label}{count}" if self.label else ""
            self.console.print(f"{self.indent}… {self.title}{doing}, {self.seconds:.0f} s so far", highlight=False)
            wait = self.every

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.stop()
