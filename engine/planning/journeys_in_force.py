"""Which journeys a plan runs, and what it needs to know of each: the conditions it evaluates
and the entry rule recorded on its enrollments.

A journey with ``enabled: false`` runs only when the KeyValue ``journey_enabled:<id>`` says
``{"enabled": true}`` (dynamic adjustment sets it; it can switch an enabled journey off too).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select as _sa_select
from sqlmodel import Session, col

from engine.language import engagement
from engine.language.journey_model import Condition, Journey
from engine.language.validation import LoadedJourney
from store.models import KeyValue

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed
# select() overloads reject; the queries here select plain columns, so use it untyped.
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


def conditions_of(journey: Journey) -> list[Condition]:
    out: list[Condition] = []
    if journey.audience.when is not None:
        out.append(journey.audience.when)
    if journey.entry.event is not None and journey.entry.event.when is not None:
        out.append(journey.entry.event.when)
    if journey.goal is not None and journey.goal.when is not None:
        out.append(journey.goal.when)
    for step in journey.steps:
        if step.branch is not None:
            out.extend(case.when for case in step.branch.cases)
        if step.wait_for is not None and step.wait_for.when is not None:
            out.append(step.wait_for.when)
        if step.send is not None and step.send.by_engagement:
            # Not judged: it makes the planner load what the engagement level is read from.
            out.append(engagement.FIELDS_READ)
    return out


def waited_conditions(journey: Journey) -> list[Condition]:
    """The conditions judged on the events an enrollment waits for: its goal's and its wait_fors'."""
    out = [journey.goal.when] if journey.goal is not None and journey.goal.when is not None else []
    return out + [s.wait_for.when for s in journey.steps if s.wait_for is not None and s.wait_for.when is not None]


def entry_rule(journey: Journey) -> str:
    entry = journey.entry
    if entry.schedule is not None:
        text = f"schedule {entry.schedule.cron}"
    elif entry.date is not None:
        anchor = entry.date.anchor + (f" {','.join(entry.date.holidays)}" if entry.date.holidays else "")
        text = f"date {anchor} {entry.date.offset} at {entry.date.at}" + (" every year" if entry.date.every else "")
    else:
        assert entry.event is not None
        text = f"event {entry.event.type}" + (f" when {entry.event.when.describe()}" if entry.event.when else "")
    tiers = ",".join(journey.audience.tiers) if journey.audience.tiers else "all tiers"
    text += f"; audience {tiers}" + (f" when {journey.audience.when.describe()}" if journey.audience.when else "")
    return text[:255]


def listened_types(journeys: Sequence[LoadedJourney]) -> frozenset[str]:
    """The event types some journey acts on: an event entry, a ``wait_for`` or a goal."""
    types: set[str] = set()
    for lj in journeys:
        j = lj.journey
        if j.entry.event is not None:
            types.add(j.entry.event.type)
        if j.goal is not None:
            types.add(j.goal.event)
        types.update(s.wait_for.event for s in j.steps if s.wait_for is not None)
    return frozenset(types)
