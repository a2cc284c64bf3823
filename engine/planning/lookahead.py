"""What a run may plan ahead of its ``now``, and what must wait until its moment has come.

A run knows the events reported up to its ``now``; ``journeys run`` also plans ahead, to the end of
every customer's next local day, so that the cap and priority see a whole day before its first
touch goes out. Planning ahead may never decide something that an event reported later could
change, or a preview would promise what does not happen. So a step at a moment past ``now`` is
planned only when no event can change it:

- sends, splits, exits, waits and branches on facts no event changes go ahead;
- an agent task or an attribute update waits for its moment (a task appears in a queue when it
  is due to, and an attribute is never changed before its time, where another journey could
  read it early);
- so does a ``wait`` until the date of an attribute an update step sets: the wait's end is fixed
  when it begins (``engine.planning.step_machine``), from the date as it stands then;
- so does a branch reading a fact events change (``EVENT_FIELDS``, and any
  ``customer.attributes.<name>`` an update step of a journey in force sets), and a send with
  ``channels: by_engagement`` (its level reads the churn risk);
- a ``wait_for`` ends ahead of ``now`` only by an event already reported, never by its timeout
  (the event may still come), and a journey with a goal never moves past a wait ahead of ``now``
  (its goal event may still come);
- a scheduled or date entry whose audience reads such a fact is judged at its moment, not ahead,
  and so is a date entry on an attribute an update step sets (the update may move the date).

Everything else a run plans ahead is what any later run would plan for the same moment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from engine.language.journey_model import AnchoredMoment, Condition, Journey, WaitUntil
from engine.language.validation import LoadedJourney
from engine.planning.journeys_in_force import conditions_of
from engine.planning.occurrences import local_naive, place

# Customer fields whose value at a moment depends on events (logins, replies, survey answers,
# churn warnings) or on other touches: a condition reading one is judged only once its moment
# has come. ``marketing_touches_7d`` counts the touches stored when the run starts (the cap's
# own decisions come after the conditions), so it is also the one field a sliced plan may read
# differently from a plan of the whole window.
EVENT_FIELDS = frozenset({
    "customer.logins_90d", "customer.replies_90d", "customer.last_nps", "customer.churn_risk",
    "customer.marketing_touches_7d",
})


def updated_fields(journeys: Iterable[LoadedJourney]) -> frozenset[str]:
    """The attribute fields update steps set: events can start those journeys at any moment."""
    return frozenset(s.update.field for lj in journeys for s in lj.journey.steps if s.update is not None)


def _reads(cond: Condition | None, fields: frozenset[str]) -> bool:
    return cond is not None and any(f in fields for f in cond.fields())


@dataclass(frozen=True)
class JourneyAhead:
    """What of one journey may be planned ahead of ``now``."""

    entry_ahead: bool  # a schedule or date entry whose audience no event changes
    held: frozenset[int]  # step indexes that run only once their moment has come
    goal: bool  # a goal event may end it at any moment after entry
    resumable: frozenset[str]  # stored step ids an enrollment may be resumed at ahead of ``now``
    reads_updated: bool  # its audience, or its date entry, reads an attribute update steps set


class Lookahead:
    """The look-ahead rules of one run's journeys (see the module docstring)."""

    def __init__(self, journeys: Sequence[LoadedJourney]) -> None:
        self.updated = updated_fields(journeys)
        self.sensitive = EVENT_FIELDS | self.updated
        self.by_id = {lj.id: self._journey(lj.journey) for lj in journeys}
        # Whether an event's run first takes its customer's scheduled and dated entries due since the
        # last written run (``ChunkPlanner._sources``), and later runs leave them as it judged them:
        # when such a journey sets an attribute some condition reads (the event's journeys must see
        # it), or such an entry reads (in its audience, or as its date) an attribute an update step of
        # any journey sets (the event's steps must not change it before the entries' moments).
        read = {f for lj in journeys for c in conditions_of(lj.journey) for f in c.fields()}
        entry_reads = {f for lj in journeys if lj.journey.entry.event is None
                       for f in ([lj.journey.entry.date.anchor] if lj.journey.entry.date is not None else [])
                       + (lj.journey.audience.when.fields() if lj.journey.audience.when is not None else [])}
        self.entries_before_events = bool(entry_reads & self.updated) or any(
            s.update.field in read for lj in journeys if lj.journey.entry.event is None
            for s in lj.journey.steps if s.update is not None)

    def _journey(self, j: Journey) -> JourneyAhead:
        audience = [c for c in (j.audience.when, j.entry.event.when if j.entry.event else None) if c is not None]
        held = {i for i, s in enumerate(j.steps) if s.task is not None or s.update is not None
                or (s.branch is not None and any(_reads(c.when, self.sensitive) for c in s.branch.cases))
                # by_engagement picks channels by churn risk, which a churn.warning changes
                or (s.send is not None and s.send.by_engagement)
                # a wait until an attribute's date ends where that date stands when the wait begins
                or (isinstance(s.wait, WaitUntil) and isinstance(s.wait.until, AnchoredMoment)
                    and s.wait.until.anchor in self.updated)}
        goal = j.goal is not None
        resumable = frozenset() if goal else frozenset(
            s.id for i, s in enumerate(j.steps) if i not in held and s.wait_for is None)
        # A date entry on an attribute an update step sets follows the date (``engine.planning.moved_anchors``).
        moved = j.entry.date is not None and j.entry.date.anchor in self.updated
        return JourneyAhead(
            entry_ahead=j.entry.event is None and not moved and not any(_reads(c, self.sensitive) for c in audience),
            held=frozenset(held), goal=goal, resumable=resumable,
            reads_updated=moved or any(_reads(c, self.updated) for c in audience))

    def of(self, journey_id: str) -> JourneyAhead:
        return self.by_id[journey_id]


def through_next_local_day(now: datetime, zones: Iterable[str]) -> datetime:
    """The end of the next local day of every zone: midnight after tomorrow, local time, the
    latest of them (a customer in any of ``zones`` is planned at least through that day)."""
    ends = [now]
    for tz in zones:
        day = local_naive(now, tz).date() + timedelta(days=2)
        ends.append(place(datetime.combine(day, time(0, 0)), tz))
    return max(ends)
