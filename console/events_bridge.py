"""The one place the console emits events, so switching to the planner's ``emit_event`` is one line.

When ``engine.loop.events.emit_event`` exists it is used: it stores the event and runs the
journeys that react to it. Until then the event row is stored here, idempotently by
its external id, and the planner picks it up (``Event.processed_at`` is left empty).
Callers emit after their own transaction has committed: on SQLite a second writer
inside an open write transaction would wait on itself.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from store.clock import as_utc, utcnow
from store.db import session_scope
from store.models import Customer, Event


class UnknownCustomer(LookupError):
    pass


@dataclass(frozen=True)
class Emitted:
    event_id: str
    created: bool
    touches: int = 0
    tasks: int = 0


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    try:
        return len(value)
    except TypeError:
        return 0


def _planner_emit() -> tuple[Callable[..., Any], type[Exception] | None] | None:
    """The planner's ``emit_event`` and its unknown-customer exception, when the planner has them."""
    try:
        module = importlib.import_module("engine.loop.events")
    except ImportError:
        return None
    fn = getattr(module, "emit_event", None)
    unknown = getattr(module, "UnknownCustomer", None)
    if not callable(fn):
        return None
    return fn, unknown if isinstance(unknown, type) and issubclass(unknown, Exception) else None


def emit(
    type_: str,
    customer_external_id: str,
    data: dict[str, Any],
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    db_url: str | None = None,
) -> Emitted:
    event_id = event_id or uuid.uuid4().hex
    planner = _planner_emit()
    if planner is not None:
        fn, unknown = planner
        try:
            result = fn(type_, customer_external_id, data, event_id=event_id, occurred_at=occurred_at, url=db_url)
        except Exception as exc:
            # The API answers 422 for an unknown customer, whichever module raised it.
            if unknown is not None and isinstance(exc, unknown):
                raise UnknownCustomer(customer_external_id) from None
            raise
        return Emitted(
            # The sender's id, as given: the planner reports its own row id, which callers never see.
            event_id=event_id,
            created=bool(getattr(result, "created", True)),
            touches=_count(getattr(result, "touches", 0)),
            tasks=_count(getattr(result, "tasks", 0)),
        )
    return store_event(type_, customer_external_id, data, event_id, occurred_at, db_url)


def store_event(
    type_: str,
    customer_external_id: str,
    data: dict[str, Any],
    event_id: str,
    occurred_at: datetime | None = None,
    db_url: str | None = None,
) -> Emitted:
    now = utcnow()
    try:
        with session_scope(db_url) as session:
            if session.exec(select(Event.id).where(Event.external_id == event_id)).first() is not None:
                return Emitted(event_id, created=False)
            customer_id = session.exec(
                select(Customer.id).where(Customer.external_id == customer_external_id)
            ).first()
            if customer_id is None:
                raise UnknownCustomer(customer_external_id)
            session.add(Event(external_id=event_id, type=type_, customer_id=customer_id, data=dict(data),
                              occurred_at=as_utc(occurred_at) if occurred_at else now, received_at=now))
    except IntegrityError:
        # Another request stored the same id between our check and insert.
        return Emitted(event_id, created=False)
    return Emitted(event_id, created=True)
