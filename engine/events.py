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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from engine.planner import Planner, active_journeys
from engine.settings_model import DeliveryConfig
from engine.validation import LoadedJourney
from store.clock import as_utc, utcnow
from store.db import get_engine
from store.models import Customer, Event


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
    from engine.journey_registry import load_delivery_config, load_in_force
    from engine.paths import journeys_dir

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
        session.commit()
        if inserted is None:
            existing = session.execute(select(col(Event.id)).where(col(Event.external_id) == external_id)).scalar_one()
            return EmitResult(int(existing), False, 0, 0)
        journeys, config = _journeys_in_force(session, str(engine.url))
        journeys = active_journeys(session, journeys)
        planner = Planner(
            session, journeys, config, occurred - timedelta(seconds=1), max(now, occurred),
            sources=frozenset({"events"}), customer_ids=[customer_id], event_ids=[int(inserted)],
        )
        result = planner.run()
        return EmitResult(int(inserted), True, result.touches_written, result.tasks_written)
