"""Checks of a journey's steps that help a new author most: the nearest name to a misspelt one, a
wait until a date the journey has in scope, a task queue the desk knows."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from engine.language.journey_model import AnchoredMoment, Step, WaitUntil


def nearest(name: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or nothing."""
    hint = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def wait_anchor_problem(step: Step, scopes: set[str]) -> str | None:
    """Why the date a ``wait: {until: {anchor: ...}}`` names is not there, or None."""
    wait = step.wait
    if not isinstance(wait, WaitUntil) or not isinstance(wait.until, AnchoredMoment):
        return None
    head = wait.until.anchor.split(".", 1)[0]
    if head in ("policy", "claim") and head not in scopes:
        return (f"wait until {wait.until.anchor}: this journey has no {head} in scope "
                f"(only a journey whose entry is a {head} date or a {head}.* event has one)")
    return None


def unknown_queue(queue: str, known: tuple[str, ...] | None) -> str | None:
    if known is None or queue in known:
        return None
    return (f"unknown queue {queue!r}{nearest(queue, known)}: queues are declared in config/queues.yaml "
            f"({', '.join(known)})")
