"""The marketing cap's contest run again when a journey stops, or runs again, with touches of it planned ahead.

``journeys run`` plans through every customer's next local day, and the cap is decided then: a
touch of a journey switched off (or whose file was removed) afterwards keeps the place it took until
dispatch cancels it at its due moment (``engine.sending.sendable``), and a touch the contest dropped
for it stayed dropped, though under the files in force it would go out. The plan run after a journey
stops therefore finds the customers with a planned marketing touch of it still ahead and runs their
contest again from that touch's day, that touch holding no place
(``engine.planning.delivery_rules.decide``): a touch dropped for it that now fits is planned again.
When the journey is switched on again (or its file comes back) before its touches fall due, they take
their places back the same way, and what they beat is dropped again: the cap holds either way.
A run reads touches only when the set of stopped journeys has changed since the last run, so a tick
costs what the change left planned, once, not what a journey switched off long ago still holds.
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
from store.clock import as_utc, utcnow
from store.models import Customer, KeyValue, Touch, TouchStatus

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed select()
# overloads reject; the queries here select plain columns.
select: Any = _sa_select
# Customers read and decided at a time: SQLite takes at most 32,766 values in one statement.
BATCH = 1000
# The journeys stopped (switched off, or their file removed) at the last run: only a change in them
# has places to hand out or take back, so a run when none changed reads no touch.
STOPPED_KEY = "planner.cap_again.stopped"


def cap_again(session: Session, in_force: Iterable[str], running: dict[str, int], config: DeliveryConfig,
              now: datetime) -> ChunkOutput:
    """The changes of the contests run again (``out.changes``) for the customers of the planned marketing
    touches, due from ``now``, of the journeys that stopped or run again since the last run. ``in_force``:
    the ids of the journeys in force; ``running``: those that run (not switched off), each with its priority.

    Which journeys were stopped at the last run is kept in the store (``STOPPED_KEY``), added to the
    session here: committed with the changes by the caller, or here when there are none, so that a run
    whose changes could not be written leaves the work to the next."""
    in_force = frozenset(in_force)
    stopped = (in_force - running.keys()) | retired(session, in_force)
    row = session.get(KeyValue, STOPPED_KEY)
    before = frozenset(row.value.get("journeys", [])) if row is not None else frozenset()
    out = ChunkOutput()
    if stopped == before:
        return out
    value = {"journeys": sorted(stopped)}
    if row is None:
        session.add(KeyValue(key=STOPPED_KEY, value=value, updated_at=utcnow()))
    else:
        row.value, row.updated_at = value, utcnow()
    # Switched on again (or its file back): its touches planned ahead take their places again.
    back = (before - stopped) & running.keys()
    changed = sorted((stopped - before) | back)
    held: dict[int, datetime] = {}
    returning: set[int] = set()
    for cid, jid, first in session.execute(
            select(Touch.customer_id, Touch.journey_id, func.min(Touch.planned_for))
            .where(col(Touch.journey_id).in_(changed), col(Touch.status) == TouchStatus.PLANNED,
                   col(Touch.category) == "marketing", col(Touch.due_at) >= now)
            .group_by(Touch.customer_id, Touch.journey_id)) if changed else ():
        held[cid] = min(held.get(cid, first), first)
        if jid in back:
            returning.add(cid)
    window = parse_duration(config.marketing_cap_window)
    customers = sorted(held)
    for first in range(0, len(customers), BATCH):
        batch = customers[first:first + BATCH]
        out.changes.extend(_contests(session, batch, held, returning, running, config, window))
    if not out.changes:
        session.commit()
    return out


def _contests(session: Session, customers: list[int], held: dict[int, datetime], returning: set[int],
              running: dict[str, int], config: DeliveryConfig, window: timedelta) -> list[TouchChange]:
    """``returning``: customers with a touch of a journey running again, whose contest may drop others'."""
    # Up to a day either side of the window: a local day starts up to a day before its UTC date.
    since = min(as_utc(held[c]) for c in customers) - window - timedelta(days=2)
    stored = stored_touches(session, and_(col(Touch.customer_id).in_(customers), col(Touch.category) == "marketing",
                                          col(Touch.due_at) > since), running)
    # Only a customer with a touch the cap dropped has anything to let back in; one with a touch of a
    # journey running again may have to give a place back.
    cap_drops = (f"{DROP_CAP}:", f"{DROP_PREEMPTED}:")
    again = sorted(cid for cid, touches in stored.items() if cid in returning
                   or any(t.status == DROPPED and (t.error_reason or "").startswith(cap_drops) for t in touches))
    if not again:
        return []
    zones = dict(session.execute(select(Customer.id, Customer.timezone).where(col(Customer.id).in_(again))).all())
    changes: list[TouchChange] = []
    for cid in again:
        # The contest reads only the customer's zone (its local days): channels were chosen at planning.
        reach = Reach(timezone=zones.get(cid) or config.default_timezone, consent={}, reachable={})
        changes.extend(decide([], reach, config, stored[cid], cid, again_from=as_utc(held[cid]))[1])
    return changes
