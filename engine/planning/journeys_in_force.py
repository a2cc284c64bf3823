"""Which journeys a plan runs, and what it needs to know of each: the conditions it evaluates
and the entry rule recorded on its enrollments.

Which journeys run at all (``enabled`` in the file, or switched through KeyValue) is
``engine.language.journey_switches``, which dispatch reads too.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.language import engagement
from engine.language.journey_model import Condition, Journey
from engine.language.journey_switches import active_journeys, switched_on
from engine.language.validation import LoadedJourney

# Where they were first defined: the planner, explain, the console and tests import them from here.
__all__ = ["active_journeys", "conditions_of", "entry_rule", "listened_types", "switched_on", "waited_conditions"]


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
