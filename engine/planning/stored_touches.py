"""The touches already in the store, as the marketing cap's contest reads them.

The planner (each chunk's wanted touches beside its customers' stored ones) and the contest run
again after a journey stops (``engine.planning.cap_again``) read the same columns into the same
``StoredTouch``: one query, so that the two contests cannot see a stored touch differently.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select as _sa_select
from sqlmodel import Session

from engine.planning.delivery_rules import StoredTouch
from engine.planning.facts import fetch_rows
from store.clock import as_utc
from store.models import Touch

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed select()
# overloads reject; the query here selects plain columns.
select: Any = _sa_select


def stored_touches(session: Session, where: Any, priorities: Mapping[str, int]) -> dict[int, list[StoredTouch]]:
    """Each customer's stored touches that match ``where`` (a SQL condition on ``Touch``), each with its
    journey's priority from ``priorities`` (None for a journey not running: it holds no place)."""
    stored: dict[int, list[StoredTouch]] = defaultdict(list)
    rows = fetch_rows(session, select(
        Touch.customer_id, Touch.key, Touch.journey_id, Touch.step_id, Touch.category, Touch.status,
        Touch.error_reason, Touch.planned_for, Touch.due_at, Touch.channel).where(where))
    for cid, key, jid, step, category, status, reason, planned_for, due, channel in rows:
        stored[cid].append(StoredTouch(key, jid, step, category, status, reason, as_utc(planned_for), as_utc(due),
                                       channel, priorities.get(jid)))
    return stored
