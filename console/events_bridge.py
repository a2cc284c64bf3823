"""The one place the console emits events: ``engine.loop.events`` stores them and acts on them.

``emit`` is for code already on a worker thread (task outcomes, assignment). ``emit_async`` is
for the REST API's ``POST /api/events``: requests arriving together are stored in one
transaction and acted on in one planner run (group commit). Each request adds its event to the
running loop's queue and awaits its own outcome; one drain at a time per database takes
everything queued into ``emit_events`` on a thread of its own, so the event loop never waits on
the database and a burst of a thousand requests costs a few transactions instead of a thousand.
An answer is given only after its event is committed, so an event answered 201 survives the
process being killed right after; a repeated event id is answered as a repeat and never acted
on twice (the store is idempotent on it, across batches and across console processes).

Callers emit after their own transaction has committed: on SQLite a second writer inside an
open write transaction would wait on itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.loop import events as planner_events
from engine.loop.events import EmitResult, Incoming


class UnknownCustomer(LookupError):
    pass


@dataclass(frozen=True)
class Emitted:
    event_id: str
    created: bool
    touches: int = 0
    tasks: int = 0


def _emitted(event: Incoming, outcome: EmitResult | Exception) -> Emitted:
    if isinstance(outcome, planner_events.UnknownCustomer):
        # The API answers 422 for an unknown customer.
        raise UnknownCustomer(str(outcome)) from None
    if isinstance(outcome, Exception):
        raise outcome
    # The sender's id, as given: the planner reports its own row id, which callers never see.
    return Emitted(event.event_id or "", outcome.created, outcome.touches, outcome.tasks)


def emit(
    type_: str,
    customer_external_id: str,
    data: dict[str, Any],
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    db_url: str | None = None,
) -> Emitted:
    """Store the event and act on it (blocking: call it from a worker thread)."""
    return emit_many([Incoming(type_, customer_external_id, data, event_id or uuid.uuid4().hex, occurred_at)],
                     db_url)[0]


def emit_many(events: list[Incoming], db_url: str | None = None) -> list[Emitted]:
    """Store and act on many events in batches of ``MAX_BATCH`` (a planner run each), like ``emit``.

    For the desk's rounds, which warn about or escalate many tasks at once: one planner run per
    batch instead of one per event. Every event needs its ``event_id``.
    """
    out: list[Emitted] = []
    for start in range(0, len(events), MAX_BATCH):
        batch = events[start:start + MAX_BATCH]
        outcomes = planner_events.emit_events(batch, db_url)
        out.extend(_emitted(event, outcome) for event, outcome in zip(batch, outcomes, strict=True))
    return out


async def emit_async(event: Incoming, db_url: str | None = None) -> Emitted:
    """``emit`` for the event loop: ``event`` (as the API read it) joins the next batch, and this awaits its
    outcome."""
    if not event.event_id:
        event = dataclasses.replace(event, event_id=uuid.uuid4().hex)
    loop = asyncio.get_running_loop()
    with _batchers_guard:  # several event loops (servers in threads) may start at once
        batchers = _batchers.setdefault(loop, {})
        batcher = batchers.get(db_url)
        if batcher is None:
            batcher = batchers[db_url] = _Batcher(db_url)
    return _emitted(event, await batcher.submit(event))


# Events per batch: a planner run over 500 customers costs about 0.3 ms of CPU per event against
# 15–40 ms for a run of one, and still answers its requests well within a second.
MAX_BATCH = 500

# One thread per process does all the batches (they take turns anyway: one SQLite writer, and
# one drain per database and event loop). A pool of its own rather than the shared request
# threadpool, whose 40 threads other requests may all be holding.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-batches")
_batchers_guard = threading.Lock()
_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str | None, _Batcher]] = \
    weakref.WeakKeyDictionary()


class _Batcher:
    """The queue of one database's events on one event loop, and its drain."""

    def __init__(self, db_url: str | None) -> None:
        self.db_url = db_url
        self.queued: list[tuple[Incoming, asyncio.Future[EmitResult | Exception]]] = []
        self.drain: asyncio.Task[None] | None = None

    async def submit(self, event: Incoming) -> EmitResult | Exception:
        future: asyncio.Future[EmitResult | Exception] = asyncio.get_running_loop().create_future()
        self.queued.append((event, future))
        if self.drain is None or self.drain.done():
            self.drain = asyncio.create_task(self._drain())
        # Shielded: a client that hangs up does not cancel the batch its event is in; the event is
        # stored and acted on all the same (it may have been committed already).
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        # Everything queued while a batch was in the database goes in the next one.
        while self.queued:
            batch, self.queued = self.queued[:MAX_BATCH], self.queued[MAX_BATCH:]
            events = [event for event, _ in batch]
            try:
                outcomes = await loop.run_in_executor(_executor, planner_events.emit_events, events, self.db_url)
            except Exception as exc:
                # The store itself failed (database down): every request of the batch gets the error.
                outcomes = [exc] * len(batch)
            except BaseException:
                # Cancelled (the loop is shutting down): no request may wait for ever. The batch
                # may still commit on its thread; a sender retrying is answered as a repeat.
                for _, future in [*batch, *self.queued]:
                    if not future.done():
                        future.set_exception(RuntimeError("the console stopped before the event was answered"))
                self.queued = []
                raise
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
