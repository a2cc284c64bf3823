"""Checks of a journey's steps that help a new author most: the nearest name to a misspelt one, a
wait until a date the journey has in scope, a task queue the desk knows, a due time a business
clock reads otherwise than the author wrote it, a loop a customer would go round without end or
that would repeat a touch."""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

from engine.language.durations import parse_duration
from engine.language.journey_model import AnchoredMoment, Journey, Step, WaitUntil
from engine.language.settings_model import QueuesConfig


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


def takes_time(step: Step) -> bool:
    """Whether a customer always stays at ``step`` for a while: a ``wait_for`` (an event comes after
    it began, or its timeout), a wait for a duration, a time of day or the next working day, or until
    the next birthday. A wait until another date ends at once once that date is past."""
    if step.wait_for is not None:
        return True
    if step.wait is None:
        return False
    if isinstance(step.wait, WaitUntil) and isinstance(step.wait.until, AnchoredMoment):
        return step.wait.until.anchor == "customer.birthday"
    return True


def _edges(journey: Journey) -> list[list[int]]:
    ids = {s.id: i for i, s in reversed(list(enumerate(journey.steps)))}
    return [[ids[t] for t in journey.successors(i) if t in ids] for i in range(len(journey.steps))]


def _cycle(start: int, edges: list[list[int]], within: set[int]) -> list[int]:
    """The shortest walk from ``start`` back to it through steps of ``within`` (empty if none), ending
    at the step that goes back up the file."""
    came: dict[int, int] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in edges[node]:
            if nxt == start:
                walk = [node]
                while walk[-1] != start:
                    walk.append(came[walk[-1]])
                walk.reverse()
                # Told from the step after the last one in the file, whose target goes back: the one that closes it.
                last = walk.index(max(walk))
                return walk[last + 1:] + walk[:last + 1]
            if nxt in within and nxt not in came:
                came[nxt] = node
                queue.append(nxt)
    return []


def _groups(edges: list[list[int]], within: set[int]) -> list[set[int]]:
    """The strongly connected groups of ``within`` steps that hold a loop, by their first step."""
    reach: dict[int, set[int]] = {}
    for node in within:
        seen: set[int] = set()
        stack = [node]
        while stack:
            for nxt in edges[stack.pop()]:
                if nxt in within and nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        reach[node] = seen
    done: set[int] = set()
    out = []
    for node in sorted(within):
        if node in done or node not in reach[node]:
            continue
        group = {other for other in reach[node] if node in reach[other]}
        done |= group
        out.append(group)
    return out


def loop_problems(journey: Journey) -> list[tuple[int, str]]:
    """(index of the step that closes the loop, why) for each loop a file may not hold: one a customer
    can go round without a wait (the planner would go round at once, without end), and one that
    passes a send, task or webhook step (a touch has one key per entry and step, so the repeat
    would never be made, though a dry run would count it)."""
    steps = journey.steps
    edges = _edges(journey)
    out: list[tuple[int, str]] = []
    instant = {i for i, s in enumerate(steps) if not takes_time(s)}
    for group in _groups(edges, instant):
        walk = _cycle(min(group), edges, group)
        names = " → ".join(steps[i].id for i in [*walk, walk[0]])
        out.append((walk[-1], f"steps {names} loop without a wait: a customer would go round at once, "
                              "without end; put a wait or wait_for in the loop, or leave it"))
    touching = {i for i, s in enumerate(steps) if s.send is not None or s.task is not None or s.webhook is not None}
    for group in _groups(edges, set(range(len(steps)))):
        if not touching & group or group <= instant:  # all instant: said above
            continue
        again = min(touching & group)
        walk = _cycle(again, edges, group)
        names = " → ".join(steps[i].id for i in [*walk, walk[0]])
        out.append((walk[-1], f"steps {names} loop back to {steps[again].id!r}: a step acts once per entry "
                              "(its touch or task has one key per customer, journey, step and occurrence), so "
                              "the repeat would never be made; write the repeat as its own step"))
    return out


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g}h"


def business_due_note(queue: str, due_within: str, desk: QueuesConfig | None) -> str | None:
    """Why a task's ``due_within`` on a business-clock queue is not the time it reads as, or None.

    On that clock whole days count working days and the rest open hours (``engine.language.sla_clock``).
    Hours past a working day's open hours end later than the next whole day would (``23h`` after
    ``1d``), and hours adding up to whole days are working days, not hours of wall time (``24h``)."""
    if desk is None:
        return None
    declared = desk.queues.get(queue)
    clock = (declared.clock if declared is not None else None) or desk.defaults.clock
    if clock != "business":
        return None
    hours = desk.business_hours
    opened = datetime.strptime(hours.end, "%H:%M") - datetime.strptime(hours.start, "%H:%M")
    window = parse_duration(due_within)
    days, rest = window.days, window - timedelta(days=window.days)
    written_in_hours = not any(unit in due_within for unit in "wd")
    whole = f"{days} working day{'s' if days > 1 else ''} and " if days else ""
    if rest > opened:
        return (f"due_within {due_within} on queue {queue!r} (business clock, {_hours(opened)} open a working "
                f"day) is {whole}{_hours(rest)} of open time: due later than {days + 1}d ({days + 1} working "
                f"day{'s' if days else ''}) would be; write {days + 1}d, or at most {_hours(opened)} past "
                f"{'whole days' if days else 'the start'}")
    if written_in_hours and days:
        return (f"due_within {due_within} on queue {queue!r} (business clock) is {whole.removesuffix(' and ')}"
                + (f" and {_hours(rest)} of open time" if rest else "")
                + f", not {due_within} around the clock: write {days}d" + (_hours(rest) if rest else "")
                + " if that is meant, or use a queue with clock: wall")
    return None


def silent_timeout(journey: Journey, index: int, written: set[str]) -> str | None:
    """Why a ``wait_for`` that names where its event goes, and not where its timeout goes, sends both the same
    way: ``on_timeout`` left out is the step below, so ``wait_for: {event: survey.answered, on_event: callback}``
    above ``callback`` calls every customer, answered or not. None when the file says it or they part."""
    wait_for = journey.steps[index].wait_for
    if wait_for is None or "on_timeout" in written or "on_event" not in written:
        return None
    below = journey.steps[index + 1].id if index + 1 < len(journey.steps) else "exit"
    if (below if wait_for.on_event == "next" else wait_for.on_event) != below:
        return None
    return (f"on_timeout is not given, so when the {wait_for.timeout} pass without {wait_for.event} the customer "
            f"goes on to {below!r} too, as on the event: write on_timeout: exit (or the step for no "
            f"{wait_for.event}) if that is not meant, or on_timeout: {below} if it is")
