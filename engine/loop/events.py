"""Event triggers: store an event once, then evaluate it at once against the journeys.

Every inbound event takes this one path, whoever reports it. ``emit_event`` is what the console's
worker threads (task outcomes), the demo and ``journeys event emit`` call; ``emit_events`` takes
many at once (the REST API gathers the requests that arrive together into one call). Webhooks
(SMS and WeChat replies, NPS digits, opt-outs, delivery receipts) store their events in their own
transaction, keyed on the provider's message id, and hand them to ``act_on_stored`` once it has
committed. The events are committed first, all in one transaction (idempotent on their external
ids: a repeat is answered as one and never acted on again); then the planner runs for those
customers and those events: event-entry journeys whose type and conditions match enrol the
customer, enrollments waiting for this event type (``wait_for``) move on, and enrollments whose
goal it is leave. Steps run up to "now"; a wait that ends later is left to ``plan``. Should the
process die between the two, the events stay unprocessed (``processed_at`` empty) and the next
``plan`` run picks them up, so nothing is lost and nothing happens twice. Events of a type no
journey in force acts on (an entry, a ``wait_for`` or a goal) are only marked processed: a planner
run would do nothing else for them, and delivery receipts come once per message.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from channels.optout import StoredEvent
from engine.language.in_force_cache import journeys_in_force
from engine.planning.journeys_in_force import listened_types
from engine.planning.planner import ChunkOutput, Planner, active_journeys
from store.clock import as_utc, out_of_range, utcnow
from store.db import get_engine
from store.models import Customer, Event, SurveyAnswer


class UnknownCustomer(LookupError):
    pass


@dataclass(frozen=True)
class EmitResult:
    event_id: int
    created: bool
    touches: int
    tasks: int


# SQLite takes one writer at a time. Without this lock every request thread of the console
# starts its write transactions at once, and all but one sit in SQLite's busy handler, which
# sleeps in steps of up to 100 ms between retries (and holds a pooled connection meanwhile):
# at 200 events/s that turned a 5 ms emit into seconds of waiting. Queueing the writers on a
# lock in the process hands the database to the next one as soon as the last commits.
# PostgreSQL locks rows, not the database, so its emits run side by side.
_sqlite_writers = threading.Lock()


def writer_lock(dialect: str) -> AbstractContextManager[object]:
    """This process's SQLite writers in turn (webhooks too); nothing on PostgreSQL."""
    return _sqlite_writers if dialect == "sqlite" else nullcontext()


def survey_answers(customer_id: int, data: dict[str, Any], answered_at: datetime) -> list[SurveyAnswer]:
    """The NPS (0–10) and CSAT (1–5) scores a ``survey.answered`` event carries; others are ignored."""
    answers = []
    for kind, low, high in (("nps", 0, 10), ("csat", 1, 5)):
        value = (data or {}).get(kind)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            continue
        answers.append(SurveyAnswer(customer_id=customer_id, kind=kind, score=int(value),
                                    comment=(data or {}).get("comment"), answered_at=answered_at))
    return answers


@dataclass(frozen=True)
class Incoming:
    """One event as a sender reports it (``emit_events`` takes many)."""

    type: str
    customer_external_id: str
    data: dict[str, Any]
    event_id: str | None = None
    occurred_at: datetime | None = None


def emit_event(
    type: str,
    customer_external_id: str,
    data: dict[str, Any],
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    url: str | None = None,
) -> EmitResult:
    """Store the event (idempotent by ``event_id``) and act on it at once."""
    [outcome] = emit_events([Incoming(type, customer_external_id, data, event_id, occurred_at)], url)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def emit_events(events: Sequence[Incoming], url: str | None = None) -> list[EmitResult | Exception]:
    """Store many events in one transaction, then act on them in as few planner runs as possible.

    One outcome per event, in order: its result, or the exception that event alone met
    (``UnknownCustomer``, or a planner error; the event is stored then, and the next ``plan`` acts
    on it). Every event answered with a result is committed before this returns. A repeated id,
    stored before or earlier in ``events``, is answered ``created=False`` and not acted on again.
    """
    engine = get_engine(url)
    stored = _store(engine, list(events))
    arrivals = [s for s in stored if isinstance(s, _Arrival)]
    _act(engine, arrivals)
    out: list[EmitResult | Exception] = []
    for s in stored:
        if isinstance(s, _Arrival):
            out.append(s.error if isinstance(s.error, Exception) else EmitResult(s.event_id, True, s.touches, s.tasks))
        else:
            out.append(s)
    return out


def _store(engine: Engine, events: list[Incoming]) -> list[_Arrival | EmitResult | Exception]:
    """Insert the events in one transaction (one commit for all); each alone if that fails."""
    if not events:
        return []
    try:
        return _store_together(engine, events)
    except Exception:
        if len(events) == 1:
            raise
        # One event that breaks the insert (a customer deleted meanwhile, a PostgreSQL deadlock
        # with another console process) must not fail the others: each alone, in its own commit.
        out: list[_Arrival | EmitResult | Exception] = []
        for e in events:
            try:
                out.extend(_store_together(engine, [e]))
            except Exception as exc:
                out.append(exc)
        return out


def _store_together(engine: Engine, events: list[Incoming]) -> list[_Arrival | EmitResult | Exception]:
    now = utcnow()
    dialect = engine.dialect.name
    refused: dict[int, Exception] = {}
    external_ids = [e.event_id or f"{e.type}:{e.customer_external_id}:{uuid.uuid4().hex}" for e in events]
    with writer_lock(dialect), Session(engine, expire_on_commit=False) as session:
        wanted = sorted({e.customer_external_id for e in events})
        customers: dict[str, int] = {}
        for i in range(0, len(wanted), _IN_LIMIT):
            customers.update((ext, int(cid)) for ext, cid in session.execute(
                select(col(Customer.external_id), col(Customer.id))
                .where(col(Customer.external_id).in_(wanted[i : i + _IN_LIMIT]))))
        rows: dict[str, dict[str, Any]] = {}  # the first event of each id; later ones repeat it
        for i, e in enumerate(events):
            customer_id = customers.get(e.customer_external_id)
            if customer_id is None:
                refused[i] = UnknownCustomer(f"no customer with external id {e.customer_external_id!r}")
                continue
            if e.occurred_at is not None and (wrong := out_of_range(e.occurred_at)):
                # The API and the CLI refuse it first; no caller may store a moment the planner's arithmetic
                # cannot take (one in year 1 once failed every later plan).
                refused[i] = ValueError(f"occurred_at {e.occurred_at.isoformat()} {wrong}")
                continue
            occurred = as_utc(e.occurred_at) if e.occurred_at else now
            rows.setdefault(external_ids[i], {
                "external_id": external_ids[i], "type": e.type, "customer_id": customer_id,
                "data": dict(e.data or {}), "occurred_at": occurred, "received_at": now})
        inserted: dict[str, int] = {}
        if rows:
            maker = pg_insert if dialect == "postgresql" else sqlite_insert
            table = Event.__table__  # type: ignore[attr-defined]
            stmt = maker(table).on_conflict_do_nothing(index_elements=["external_id"]).returning(
                table.c.id, table.c.external_id)
            # Sorted by id: two PostgreSQL console processes inserting overlapping bursts take the
            # row locks of the unique key in the same order, so neither waits on the other in a cycle.
            ordered = [rows[k] for k in sorted(rows)]
            for i in range(0, len(ordered), _IN_LIMIT):
                inserted.update((ext, int(eid)) for eid, ext in session.execute(stmt, ordered[i : i + _IN_LIMIT]))
            # Answers reported by other systems count in NPS/CSAT like answers by reply do
            # (channels.inbound records those itself and does not come through here).
            session.add_all([a for ext in inserted if rows[ext]["type"] == "survey.answered"
                             for a in survey_answers(rows[ext]["customer_id"], rows[ext]["data"],
                                                     rows[ext]["occurred_at"])])
        repeated = sorted(set(rows) - set(inserted))
        existing: dict[str, int] = {}
        for i in range(0, len(repeated), _IN_LIMIT):
            existing.update((ext, int(eid)) for ext, eid in session.execute(
                select(col(Event.external_id), col(Event.id))
                .where(col(Event.external_id).in_(repeated[i : i + _IN_LIMIT]))))
        session.commit()
    out: list[_Arrival | EmitResult | Exception] = []
    first: set[str] = set()
    for i, ext in enumerate(external_ids):
        if i in refused:
            out.append(refused[i])
        elif ext in inserted and ext not in first:
            first.add(ext)
            row = rows[ext]
            out.append(_Arrival(row["customer_id"], inserted[ext], row["type"], row["occurred_at"],
                                max(now, row["occurred_at"])))
        else:
            out.append(EmitResult(inserted.get(ext) or existing[ext], False, 0, 0))
    return out


_IN_LIMIT = 500  # rows per statement and values per IN list: well inside every driver's parameter limit


# --- acting on stored events, several at a time -------------------------------------------------
#
# A planner run costs 5–15 ms of CPU whatever its size (a dozen queries and statement builds);
# per event, a run over 10 customers costs about 1 ms, over 100 about 0.5 ms, over 250 or more
# about 0.3 ms. So stored events wait in one queue per database, and the next run takes all it
# may (group commit): a batch from the API, and the events of request threads that arrived while
# a run was going. Alone, an event is planned at once as before; under load, one run serves many
# requests and the event path keeps up with the arrival rate.


def act_on_stored(events: Sequence[StoredEvent], url: str | None = None) -> list[EmitResult | Exception]:
    """Act at once on events a webhook stored and committed itself, as ``emit_events`` acts on its own.

    One outcome per event, in order. A failure is that event's outcome, never raised: the
    webhook has its answer already, and the event, stored but unprocessed, is the next
    ``plan``'s to act on."""
    now = utcnow()
    arrivals = [_Arrival(e.customer_id, e.id, e.type, as_utc(e.occurred_at), max(now, as_utc(e.occurred_at)))
                for e in events]
    _act(get_engine(url), arrivals)
    return [a.error if isinstance(a.error, Exception) else EmitResult(a.event_id, True, a.touches, a.tasks)
            for a in arrivals]


@dataclass
class _Arrival:
    customer_id: int
    event_id: int
    type: str
    occurred: datetime
    end: datetime  # steps run up to here: "now", or the time of an event reported from the future
    done: bool = False
    touches: int = 0
    tasks: int = 0
    error: Exception | None = None


MAX_BATCH = 500  # customers per run; the API's batches are no larger
_queued: dict[str, list[_Arrival]] = {}
_queue_guard = threading.Lock()
_planners: dict[str, threading.Lock] = {}


def _act(engine: Engine, arrivals: Sequence[_Arrival]) -> None:
    """Plan the stored events ``arrivals``, together with whatever other threads have queued;
    each arrival ends ``done``, with its counts or its ``error``."""
    if not arrivals:
        return
    key = str(engine.url)
    with _queue_guard:
        _queued.setdefault(key, []).extend(arrivals)
        planning = _planners.setdefault(key, threading.Lock())
    for arrival in arrivals:
        while not arrival.done:
            with planning:
                # The run this thread waited for may have taken its event already.
                if arrival.done:
                    break
                taken = _take(key)
                if taken is None:
                    # Taken by a run that never finished (its thread died mid-run): the event is
                    # stored but unprocessed, so the next plan acts on it.
                    arrival.error = RuntimeError("the planner run for this event did not finish")
                    arrival.done = True
                    break
                _run(engine, *taken)


def _take(key: str) -> tuple[list[_Arrival], datetime] | None:
    """The oldest waiting events, one per customer (a second event of the same customer must see
    the first one's enrollment: it goes in a later run, as does every event of a customer after
    one that waits), all with the same horizon. An event stamped in the future runs alone up to
    its own time."""
    now = utcnow()
    with _queue_guard:
        queue = _queued.get(key) or []
        if not queue:
            return None
        if queue[0].end > now:
            head = queue.pop(0)
            return [head], head.end
        batch: list[_Arrival] = []
        seen: set[int] = set()
        rest: list[_Arrival] = []
        for a in queue:
            if len(batch) < MAX_BATCH and a.end <= now and a.customer_id not in seen:
                batch.append(a)
            else:
                rest.append(a)
            seen.add(a.customer_id)
        _queued[key] = rest
    return batch, now


def _run(engine: Engine, batch: list[_Arrival], end: datetime) -> None:
    touches: Counter[int] = Counter()
    tasks: Counter[int] = Counter()

    def count(out: ChunkOutput) -> None:
        touches.update(d.wanted.customer_id for d in out.decisions if d.planned)
        tasks.update(t.customer_id for t in out.tasks)

    try:
        with writer_lock(engine.dialect.name), Session(engine, expire_on_commit=False) as session:
            journeys, config = journeys_in_force(session, str(engine.url))
            journeys = active_journeys(session, journeys)
            if not listened_types(journeys) & {a.type for a in batch}:
                # No journey acts on these (delivery receipts, opt-outs, most of the time): a planner
                # run would only mark them processed, at 5–15 ms a run, once per receipt.
                ids = [a.event_id for a in batch]
                table = Event.__table__  # type: ignore[attr-defined]
                session.execute(update(table).where(table.c.id.in_(ids), table.c.processed_at.is_(None))
                                .values(processed_at=utcnow()))
                session.commit()
                for a in batch:
                    a.done = True
                return
            planner = Planner(
                session, journeys, config, min(a.occurred for a in batch) - timedelta(seconds=1), end,
                sources=frozenset({"events"}), customer_ids=[a.customer_id for a in batch],
                event_ids=[a.event_id for a in batch], sink=count,
            )
            result = planner.run()
    except Exception as exc:
        if len(batch) == 1:
            batch[0].error = exc
            batch[0].done = True
            return
        # One bad event must not fail the requests it happened to share a run with: each alone.
        # (The failed run wrote nothing: the planner commits once, at the end of its only chunk.)
        for a in batch:
            _run(engine, [a], end)
        return
    if len(batch) == 1:
        # Alone, the run's own counts are exact (rows written, repeats not counted).
        batch[0].touches, batch[0].tasks = result.touches_written, result.tasks_written
    else:
        # One event per customer in a run, so what was planned for a customer is that event's doing.
        for a in batch:
            a.touches, a.tasks = touches[a.customer_id], tasks[a.customer_id]
    for a in batch:
        a.done = True
