"""Which journeys in force run: a journey with ``enabled: false`` runs only when the KeyValue
``journey_enabled:<id>`` says ``{"enabled": true}`` (dynamic adjustment sets it; it can switch an
enabled journey off too). The planner plans only these, and dispatch sends no touch of the others, so
a journey switched off stops at once, also for what a run had planned ahead of its moment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select as _sa_select
from sqlmodel import Session, col

from engine.language.validation import LoadedJourney
from store.models import KeyValue

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed
# select() overloads reject; the query here selects plain columns, so use it untyped.
select: Any = _sa_select

ENABLED_PREFIX = "journey_enabled:"


def switched_on(session: Session) -> dict[str, bool]:
    rows = session.execute(
        select(KeyValue.key, KeyValue.value).where(col(KeyValue.key).startswith(ENABLED_PREFIX))
    ).all()
    return {key[len(ENABLED_PREFIX) :]: bool((value or {}).get("enabled")) for key, value in rows}


def active_journeys(session: Session, journeys: Iterable[LoadedJourney]) -> list[LoadedJourney]:
    """Journeys that run: enabled in their file, or switched on (or off) through KeyValue."""
    switches = switched_on(session)
    return [lj for lj in journeys if switches.get(lj.id, lj.journey.enabled)]
