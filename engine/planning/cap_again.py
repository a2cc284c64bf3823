"""The marketing cap's contest run again when a journey stops with touches of it planned ahead.

``journeys run`` plans through every customer's next local day, and the cap is decided then: a
touch of a journey switched off (or whose file was removed) afterwards keeps the place it took until
dispatch cancels it at its due moment (``engine.sending.sendable``), and a touch the contest dropped
for it stayed dropped, though under the files in force it would go out. Each plan run therefore finds
the customers with a planned marketing touch of a journey that no longer runs, still ahead, and runs
their contest again from that touch's day, that touch holding no place
(``engine.planning.delivery_rules.decide``): a touch dropped for it that now fits is planned again.
Nothing is read unless some journey has stopped, and a customer's contest changes nothing once it
has been run again, so a run costs what the stopped journeys left planned.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func
from sqlalchemy import select as _sa_select
from sqlmodel import Session, col

from engine.language.durations import parse_duration
from engine.language.journey_edits import retired
from engine.language.settings_model import DeliveryConfig
from engine.planning.delivery_rules import (
    DROP_CAP,
    DROP_PREEMPTED,
    DROPPED,
    Reach,
    TouchChange,
    decide,
)
from engine.planning.plan_output import ChunkOutput
from engine.planning.stored_touches import stored_touches
from store.clock import as_utc
from store.models import Customer, Touch, TouchStatus

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed select()
# overloads reject; the queries here select plain columns.
select: Any = _sa_select
# Customers read and decided at a time: SQLite takes at most 32,766 values in one statement.
BATCH = 1000


def cap_again(session: Session, in_force: Iterable[str], running: dict[str, int], config: DeliveryConfig,
              now: datetime) -> ChunkOutput:
    """The changes of the contests run again (``out.changes``) for the customers of stopped journeys'
    planned marketing touches due from ``now``. ``in_force``: the ids of the journeys in force;
    ``running``: those that run (not switched off), each with its priority."""
    in_force = frozenset(in_force)
    stopped = (in_force - running.keys()) | retired(session, in_force)
    out = ChunkOutput()
    if not stopped:
        return out
    held = dict(session.execute(
        select(Touch.customer_id, func.min(Touch.planned_for))
        .where(col(Touch.journey_id).in_(sorted(stopped)), col(Touch.status) == TouchStatus.PLANNED,
               col(Touch.category) == "marketing", col(Touch.due_at) >= now)
        .group_by(Touch.customer_id)).all())
    if not held:
        return out
    window = parse_duration(config.marketing_cap_window)
    customers = sorted(held)
    for first in range(0, len(customers), BATCH):
        batch = customers[first:first + BATCH]
        out.changes.extend(_contests(session, batch, held, running, config, window))
    return out


def _contests(session: Session, customers: list[int], held: dict[int, datetime], running: dict[str, int],
              config: DeliveryConfig, window: timedelta) -> list[TouchChange]:
    # Up to a day either side of the window: a local day starts up to a day before its UTC date.
    since = min(as_utc(held[c]) for c in customers) - window - timedelta(days=2)
    stored = stored_touches(session, and_(col(Touch.customer_id).in_(customers), col(Touch.category) == "marketing",
                                          col(Touch.due_at) > since), running)
    # Only a customer with a touch the cap dropped has anything to let back in.
    cap_drops = (f"{DROP_CAP}:", f"{DROP_PREEMPTED}:")
    again = sorted(cid for cid, touches in stored.items()
                   if any(t.status == DROPPED and (t.error_reason or "").startswith(cap_drops) for t in touches))
    if not again:
        return []
    zones = dict(session.execute(select(Customer.id, Customer.timezone).where(col(Customer.id).in_(again))).all())
    changes: list[TouchChange] = []
    for cid in again:
        # The contest reads only the customer's zone (its local days): channels were chosen at planning.
        reach = Reach(timezone=zones.get(cid) or config.default_timezone, consent={}, reachable={})
        changes.extend(decide([], reach, config, stored[cid], cid, again_from=as_utc(held[cid]))[1])
    return changes
