"""The loop of the desk's passes over many tasks: one short transaction per batch, until a batch comes up short.

A pass over every overdue task or every task without SLA times could touch a whole pool; taken
in batches, each transaction stays short and a crash loses at most the batch in flight
(``console.sla.settle_new_tasks``, ``console.assignment.escalate_overdue``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable


def in_batches(batch: Callable[[], tuple[int, int]], size: int, log: logging.Logger, done: str) -> int:
    """Run ``batch`` until it reads fewer than ``size`` rows; returns the sum of what it acted on.

    ``batch`` runs one transaction and answers (rows it read, rows it acted on); ``done`` is the
    log message (with a ``%d`` for the sum), written under the caller's logger when there was any.
    """
    total = 0
    while True:
        read, acted = batch()
        total += acted
        if read < size:
            break
    if total:
        log.info(done, total)
    return total
