"""Date entries on an attribute that update steps set: their occurrences follow the attribute as a
run moves it.

A date entry on ``customer.attributes.<name>`` fires at a moment when the attribute holds the date
it is anchored on at that moment. The chunk's entrants are found in SQL from the attributes as
stored when the run starts (``engine.planning.anchored_entrants``); an update step later in the
run may move the date. So, in the customer's agenda (``engine.planning.chunk_planner``), an
entrant of such a journey enters only if the attribute still gives its occurrence at its turn,
and an update that moves the date adds the occurrences it now has between the update and the end
of the run's window. One run over a period then enters what runs cut anywhere in it enter: a later
run reads the moved date from the store. Such entries are judged at their moment, never planned
ahead (``engine.planning.lookahead``): an update due before them may still move the date.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select as _sa_select
from sqlmodel import Session, col

from engine.language.journey_model import DateEntry
from engine.language.validation import LoadedJourney
from engine.planning.candidates import Entrant, EntryHistory
from engine.planning.facts import CustomerFacts, fetch_rows, id_filter
from engine.planning.occurrences import anchored_fires, as_anchor_date
from engine.planning.plan_output import ChunkOutput
from store.clock import as_utc
from store.models import Enrollment

select: Any = _sa_select

# Fires are worked out over (start, end]: a window reaching just before a moment includes it.
_JUST_BEFORE = timedelta(microseconds=1)


def moved_entry(lj: LoadedJourney, updated: frozenset[str]) -> DateEntry | None:
    """The date entry of ``lj`` when it is anchored on an attribute some update step sets."""
    entry = lj.journey.entry.date
    return entry if entry is not None and entry.anchor in updated else None


def _fires(entry: DateEntry, cf: CustomerFacts, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
    """(occurrence, due) of ``entry`` in (start, end] from the date the customer's attribute holds now."""
    day = as_anchor_date(cf.fact.get(entry.anchor))
    if day is None:
        return []
    attribute = entry.anchor.removeprefix("customer.attributes.")
    return [(f"attribute-{attribute}-{suffix}", due) for suffix, due in anchored_fires(
        day, entry.every, entry.at, entry.offset, cf.timezone, start, end, entry.on_non_working_day)]


class MovedAnchors:
    """The journeys of a run whose date entry an update step can move, and the chunk's entries of theirs."""

    def __init__(self, journeys: Sequence[LoadedJourney], updated: frozenset[str]) -> None:
        self.entries = {lj.id: (lj, entry) for lj in journeys if (entry := moved_entry(lj, updated)) is not None}
        self.fields = tuple(sorted({entry.anchor for _, entry in self.entries.values()}))
        self._stored: set[tuple[int, str, str]] | None = None

    def new_chunk(self) -> None:
        self._stored = None

    def values(self, cf: CustomerFacts) -> tuple[Any, ...]:
        return tuple(cf.fact.get(f) for f in self.fields)

    def still_fires(self, e: Entrant, cf: CustomerFacts) -> bool:
        """Whether ``e`` (found from the stored date) is an occurrence of the date the customer has now."""
        _, entry = self.entries[e.journey_id]
        return (e.occurrence, e.due) in _fires(entry, cf, e.due - _JUST_BEFORE, e.due)

    def added(self, cf: CustomerFacts, turn: tuple[datetime, str, str], pending: Sequence[Entrant],
              window: Callable[[LoadedJourney], tuple[datetime, datetime]], load: Callable[[], None],
              out: ChunkOutput) -> list[Entrant]:
        """The entrants an update at ``turn`` (its moment, journey and occurrence in the agenda's order)
        gives the customer: occurrences of the moved dates after it within each journey's window, not
        already stored, pending or entered in this run, of a tier the audience takes."""
        moment = turn[0]
        known = {(e.journey_id, e.occurrence) for e in pending}
        known |= {(x.journey_id, x.occurrence) for x in out.enrollments if x.customer_id == cf.id}
        found: list[Entrant] = []
        for jid, (lj, entry) in self.entries.items():
            lo, hi = window(lj)
            for occurrence, due in _fires(entry, cf, max(lo, moment - _JUST_BEFORE), hi):
                if (due, jid, occurrence) <= turn or (jid, occurrence) in known:
                    continue
                tiers = lj.journey.audience.tiers
                if tiers and cf.tier not in tiers:
                    out.audience[(cf.id, jid)] = False
                    continue
                if self._stored is None:
                    load()
                assert self._stored is not None
                if (cf.id, jid, occurrence) not in self._stored:
                    found.append(Entrant(cf.id, lj, occurrence, due, {}))
        return found

    def load(self, session: Session, lo: int, hi: int, ids: Sequence[int] | None, history: EntryHistory) -> None:
        """The chunk's stored entries of these journeys: occurrences already entered, and the earlier
        entries their re-entry rules count (added to ``history``), read once per chunk when first needed."""
        self._stored = set()
        rows = fetch_rows(session, select(
            Enrollment.customer_id, Enrollment.journey_id, Enrollment.occurrence, Enrollment.entered_at).where(
            id_filter(col(Enrollment.customer_id), lo, hi, ids), col(Enrollment.journey_id).in_(sorted(self.entries))))
        for cid, jid, occurrence, entered in rows:
            self._stored.add((cid, jid, occurrence))
            history.entered.setdefault((cid, jid), []).append(as_utc(entered))
            if not self.entries[jid][0].journey.reentry.allowed:
                history.ever.add((cid, jid))
