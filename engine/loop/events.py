"""Event triggers: store an event once, then evaluate it at once against the journeys.

``emit_event`` is what the web layer, webhooks and ``journeys event emit`` call. The event
row is committed first (idempotent on its external id); then the planner runs for that one
customer and that one event: event-entry journeys whose type and conditions match enrol the
customer, enrollments waiting for this event type (``wait_for``) move on, and enrollments
whose goal it is leave. Steps run up to "now"; a wait that ends later is left to ``plan``.
Should the process die between the two, the event stays unprocessed (``processed_at`` empty)
and the next ``plan`` run picks it up, so nothing is lost and nothing happens twice.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from engine.language.settings_model import DeliveryConfig
from engine.language.validation import LoadedJourney
from engine.planning.planner import ChunkOutput, Planner, active_journeys
from store.clock import as_utc, utcnow
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


def _writer_lock(dialect: str) -> AbstractContextManager[object]:
    return _sqlite_writers if dialect == "sqlite" else nullcontext()


_cache: dict[tuple[str, str], tuple[tuple[tuple[str, float], ...], list[LoadedJourney], DeliveryConfig]] = {}
_loading = threading.Lock()


def _signature(directory: Path) -> tuple[tuple[str, float], ...]:
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")) if directory.is_dir() else []
    return tuple((str(p), p.stat().st_mtime) for p in files)


def _journeys_in_force(session: Session, url: str) -> tuple[list[LoadedJourney], DeliveryConfig]:
    """Journeys and delivery config, re-validated only when a journey file changed: webhooks
    arrive many times a second and validating every file each time would dominate."""
    from engine.language.journey_registry import load_delivery_config, load_in_force
    from engine.language.paths import journeys_dir

    directory = journeys_dir()
    signature = _signature(directory)
    cached = _cache.get((url, str(directory)))
    if cached is not None and cached[0] == signature:
        return cached[1], cached[2]
    # One loader at a time: loading publishes new journey versions, and request threads that all
    # missed the cache at once (the first events after a start or a journey edit) raced to insert
    # the same version and failed on its unique key.
    with _loading:
        signature = _signature(directory)
        cached = _cache.get((url, str(directory)))
        if cached is not None and cached[0] == signature:
            return cached[1], cached[2]  # loaded by the thread this one waited for
        in_force = load_in_force(session, directory)
        session.commit()
        journeys, config = list(in_force.journeys.values()), load_delivery_config()
        _cache[(url, str(directory))] = (signature, journeys, config)
    return journeys, config


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


def emit_event(
    type: str,
    customer_external_id: str,
    data: dict[str, Any],
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    url: str | None = None,
) -> EmitResult:
    """Store the event (idempotent by ``event_id``) and act on it at once."""
    engine = get_engine(url)
    now = utcnow()
    occurred = as_utc(occurred_at) if occurred_at else now
    external_id = event_id or f"{type}:{customer_external_id}:{uuid.uuid4().hex}"
    with _writer_lock(engine.dialect.name), Session(engine, expire_on_commit=False) as session:
        customer_id = session.execute(
            select(col(Customer.id)).where(col(Customer.external_id) == customer_external_id)
        ).scalar_one_or_none()
        if customer_id is None:
            raise UnknownCustomer(f"no customer with external id {customer_external_id!r}")
        maker = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        table = Event.__table__  # type: ignore[attr-defined]
        inserted = session.execute(
            maker(table).on_conflict_do_nothing(index_elements=["external_id"]).returning(table.c.id),
            [{"external_id": external_id, "type": type, "customer_id": customer_id, "data": dict(data or {}),
              "occurred_at": occurred, "received_at": now}],
        ).scalar_one_or_none()
        if inserted is not None and type == "survey.answered":
            # Answers reported by other systems count in NPS/CSAT like answers by reply do
            # (channels.inbound records those itself and does not come through here).
            session.add_all(survey_answers(customer_id, data, occurred))
        session.commit()
        if inserted is None:
            existing = session.execute(select(col(Event.id)).where(col(Event.external_id) == external_id)).scalar_one()
            return EmitResult(int(existing), False, 0, 0)
    arrival = _Arrival(int(customer_id), int(inserted), occurred, max(now, occurred))
    _act(engine, arrival)
    return EmitResult(arrival.event_id, True, arrival.touches, arrival.tasks)


# --- acting on stored events, several at a time -------------------------------------------------
#
# Planning one event costs about 5 ms of CPU, nearly all of it the dozen queries and statement
# builds a planner run makes whatever its size; planning 10 events in one run costs about 1 ms
# each. So the request threads that arrive while a run is going queue their events, and the
# next run takes all of them (group commit): alone, an event is planned at once as before;
# under load, one run serves many requests and the event path keeps up with the arrival rate.


@dataclass
class _Arrival:
    customer_id: int
    event_id: int
    occurred: datetime
    end: datetime  # steps run up to here: "now", or the time of an event reported from the future
    done: bool = False
    touches: int = 0
    tasks: int = 0
    error: BaseException | None = None


MAX_BATCH = 64
_queued: dict[str, list[_Arrival]] = {}
_queue_guard = threading.Lock()
_planners: dict[str, threading.Lock] = {}


def _act(engine: Engine, arrival: _Arrival) -> None:
    key = str(engine.url)
    with _queue_guard:
        _queued.setdefault(key, []).append(arrival)
        planning = _planners.setdefault(key, threading.Lock())
    with planning:
        # The run this thread waited for may have taken its event already.
        if not arrival.done:
            batch, end = _take(key, arrival)
            _run(engine, batch, end)
    if arrival.error is not None:
        raise arrival.error


def _take(key: str, mine: _Arrival) -> tuple[list[_Arrival], datetime]:
    """This thread's event and others waiting, one per customer (a second event of the same
    customer must see the first one's enrollment: it goes in the next run), all with the same
    horizon. An event stamped in the future runs alone up to its own time, as it did before."""
    now = utcnow()
    with _queue_guard:
        queue = _queued[key]
        if mine.end > now:
            queue.remove(mine)
            return [mine], mine.end
        batch, customers, rest = [mine], {mine.customer_id}, []
        for a in queue:
            if a is mine:
                continue
            if len(batch) < MAX_BATCH and a.end <= now and a.customer_id not in customers:
                batch.append(a)
                customers.add(a.customer_id)
            else:
                rest.append(a)
        _queued[key] = rest
    return batch, now


def _run(engine: Engine, batch: list[_Arrival], end: datetime) -> None:
    touches: Counter[int] = Counter()
    tasks: Counter[int] = Counter()

    def count(out: ChunkOutput) -> None:
        touches.update(d.wanted.customer_id for d in out.decisions if d.planned)
        tasks.update(t.customer_id for t in out.tasks)

    try:
        with _writer_lock(engine.dialect.name), Session(engine, expire_on_commit=False) as session:
            journeys, config = _journeys_in_force(session, str(engine.url))
            journeys = active_journeys(session, journeys)
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
