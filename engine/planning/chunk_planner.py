"""One chunk of customers planned from start to finish: the unit a planner run (and each of its
worker processes) repeats.

Per chunk: the candidates are narrowed in SQL (``engine.planning.candidates``), facts are
loaded in bulk for those customers only (``engine.planning.facts``), and then each customer's
agenda is worked through in the order of time: new entrants at their due time (audience and
re-entry judged then) and enrollments under way when their wait ends, each moved by the step
machine (``engine.planning.step_machine``) until it next waits, then put back in the agenda
at that moment. So whatever one journey does at a moment (an attribute update) is seen by
exactly the steps that come after it, however the run's window was cut. Delivery rules then
decide channel, time and cap for the customer's touches together with those already stored
(``engine.planning.delivery_rules``), and the output goes, unless it is a dry run, to the writer
(``engine.planning.plan_writer``), which commits it, and then to the sink. Nothing here decides
how a book is cut into chunks or where they run: that is the planner's
(``engine.planning.planner``), which spawns worker processes that import this module, never
the planner.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import operator
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy import select as _sa_select
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from engine.language.durations import parse_duration
from engine.language.settings_model import DeliveryConfig
from engine.language.validation import LoadedJourney
from engine.planning.candidates import ALL_SOURCES, Candidates, Entrant
from engine.planning.delivery_rules import Wanted, decide
from engine.planning.facts import CustomerFacts, id_filter, load_customers
from engine.planning.journeys_in_force import conditions_of, listened_types, waited_conditions
from engine.planning.lookahead import Lookahead
from engine.planning.moved_anchors import MovedAnchors
from engine.planning.plan_output import ChunkOutput, PlannedEnrollment, PlanResult, Sink
from engine.planning.plan_writer import StaleTouches, write_chunk
from engine.planning.step_machine import AT, CustomerEvent, Progress, StepMachine, step_graph
from engine.planning.stored_touches import stored_touches
from engine.planning.wait_until import anchor_fields
from store.clock import as_utc
from store.masking import mask_text
from store.models import Customer, Event, KeyValue, Touch

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed
# select() overloads reject; the queries here select plain columns, so use it untyped.
select: Any = _sa_select

CHUNK = 20_000
# Where an entrant comes in a customer's agenda: by due time, then journey, then occurrence.
AGENDA_ORDER = operator.attrgetter("due", "journey_id", "occurrence")
log = logging.getLogger(__name__)

CURSOR_KEY = "plan:last_end"
# How often a chunk is planned again when a stored touch the cap decided on was taken meanwhile.
STALE_RETRIES = 3


def read_cursor(session: Session) -> tuple[datetime, datetime] | None:
    """Where the last written run left off: (the end it planned ahead to, its ``now``). A cursor
    written before runs planned ahead holds one moment, both at once."""
    row = session.get(KeyValue, CURSOR_KEY)
    if row is None or not row.value.get("end"):
        return None
    end = as_utc(datetime.fromisoformat(row.value["end"]))
    now = as_utc(datetime.fromisoformat(row.value["now"])) if row.value.get("now") else end
    return end, now


class ChunkPlanner:
    """A planner's settings, and the planning of one chunk of customer ids under them."""

    def __init__(
        self,
        session: Session,
        journeys: Sequence[LoadedJourney],
        config: DeliveryConfig,
        start: datetime,
        end: datetime,
        *,
        now: datetime | None = None,
        start_now: datetime | None = None,
        dry_run: bool = False,
        sources: frozenset[str] = ALL_SOURCES,
        customer_ids: Sequence[int] | None = None,
        event_ids: Sequence[int] | None = None,
        sink: Sink | None = None,
        chunk: int = CHUNK,
        workers: int | None = None,
        entries_again: dict[str, datetime] | None = None,
    ) -> None:
        """Plan (``start``, ``end``]: ``now`` (default ``end``) is the moment the run stands at, up
        to which it knows what happened; from there to ``end`` it plans only what no later event
        can change (``engine.planning.lookahead``). Entries judged at their moment are taken from
        (``start_now``, ``now``] (default ``start``). ``entries_again``: journey id → the moment after which
        its entries judged ahead are taken again, an edit having taken back those judged under the old
        file (``engine.language.journey_edits``)."""
        self.session = session
        self.journeys = list(journeys)
        self.config = config
        self.start = as_utc(start)
        self.end = as_utc(end)
        self.now = min(as_utc(now), self.end) if now is not None else self.end
        self.start_now = as_utc(start_now) if start_now is not None else self.start
        self.dry_run = dry_run
        self.customer_ids = sorted(set(customer_ids)) if customer_ids is not None else None
        self.look = Lookahead(self.journeys)
        self.sources = self._sources(sources)
        # Whether this run leaves alone its customers' entries an event's run judged (``_judged_before``).
        self.after_event_runs = (self.look.entries_before_events and bool(self.sources & {"schedule", "date"})
                                 and (cursor := read_cursor(session)) is not None and cursor[1] == self.start_now)
        self.event_ids = list(event_ids) if event_ids is not None else None
        self.sink = sink
        self.chunk = chunk
        self.workers = workers
        self.result = PlanResult(self.start, self.end, dry_run, journeys=[j.id for j in self.journeys])
        self.entries_again = {j: as_utc(at) for j, at in (entries_again or {}).items()}
        self.candidates = Candidates(session, self.journeys, self.start, self.end, sources=self.sources,
                                     customer_ids=self.customer_ids, event_ids=self.event_ids, now=self.now,
                                     start_now=self.start_now, look=self.look, entries_again=self.entries_again)
        # Held while a chunk is written: worker processes writing one SQLite file pass a lock
        # shared between them, so a waiting writer wakes when the other commits instead of
        # polling with SQLite's busy timeout (up to 100 ms between tries).
        self.write_lock: AbstractContextManager[Any] = nullcontext()
        self.dialect = session.get_bind().dialect.name
        # Fields each journey's conditions read: a chunk loads only those of the journeys it
        # runs (a day without the holiday journey reads no attributes, one without the
        # potential-tier journeys counts no logins).
        self.fields: dict[str, set[str]] = {}
        for lj in self.journeys:
            self.fields[lj.id] = {f for cond in conditions_of(lj.journey) for f in cond.fields()} | anchor_fields(
                lj.journey)
        self.moved = MovedAnchors(self.journeys, self.look.updated)
        for lj in self.journeys:
            # A journey that moves an entry's date reads it first, to see that it moved; the entry's
            # journey reads it to see that it has not.
            if lj.id in self.moved.entries or any(
                    s.update is not None and s.update.field in self.moved.fields for s in lj.journey.steps):
                self.fields[lj.id] |= set(self.moved.fields)
        self.needed = set().union(*self.fields.values())
        self.priorities = {lj.id: lj.journey.priority for lj in self.journeys}
        # Each journey's own cap (``cap`` in its file), decided with the marketing cap (``delivery_rules``).
        self.journey_caps = {lj.id: (lj.journey.cap.count, parse_duration(lj.journey.cap.window))
                             for lj in self.journeys if lj.journey.cap is not None}
        # Journeys whose wait_for or goal conditions read an attribute an update step sets: judged
        # again from the moment an update in the run changes it (``StepMachine.rejudge``).
        self.rejudged = {lj.id for lj in self.journeys if any(
            f in self.look.updated for c in waited_conditions(lj.journey) for f in c.fields())}

    def _sources(self, sources: frozenset[str]) -> frozenset[str]:
        """An event's run (events only, for its customers) also takes what those customers' scheduled
        and dated journeys had due since the last written run, when one of those sets an attribute a
        condition reads: the event's journeys must see it. (Otherwise nothing they do reaches the
        event's journeys: the cap decides a day whichever run planned its touches.)"""
        if self.customer_ids is None or "events" not in sources or {"schedule", "date"} <= sources:
            return sources
        if not self.look.entries_before_events:
            return sources
        cursor = read_cursor(self.session)
        if cursor is None or cursor[1] >= self.now:
            return sources
        self.start, self.start_now = min(cursor[0], self.now), cursor[1]
        return sources | {"schedule", "date"}

    def plan_chunk(self, lo: int, hi: int, ids: Sequence[int] | None) -> None:
        """Plan and write the customers of ids ``lo``..``hi`` (of ``ids`` when given).

        A chunk whose planning fails (an error raised while planning its rows, before anything is
        written) is planned again in halves down to the one customer at fault, who is left out of
        this run and reported (``PlanResult.failed_customers``): one bad row must not stop the book.
        That customer's unprocessed events stay unprocessed, so every later run tries again and says
        so until the row is mended. An error of the database (a full disk, a lost connection, a
        refused write) fails the run as before: it is not one customer's, and the next run repairs
        it, each chunk committing on its own.
        """
        for attempt in range(STALE_RETRIES):
            try:
                out = self._plan(lo, hi, ids)
            except (DBAPIError, MemoryError):
                raise
            except Exception as exc:
                self.session.rollback()  # a PostgreSQL transaction the failed reads broke
                self._isolate(lo, hi, ids, exc)
                return
            if out is None:
                return
            if not self.dry_run:
                try:
                    self._write(out)
                except StaleTouches:
                    if attempt + 1 == STALE_RETRIES:
                        raise
                    continue  # planned again around the touch dispatch took
            self.result.add(out)
            if self.sink is not None:
                self.sink(out)
            return

    def _isolate(self, lo: int, hi: int, ids: Sequence[int] | None, exc: Exception) -> None:
        """Plan the halves of a chunk that failed, or report its one customer."""
        members = sorted(ids) if ids is not None else None
        if members is not None and len(members) > 1:
            half = len(members) // 2
            self.plan_chunk(members[0], members[half - 1], members[:half])
            self.plan_chunk(members[half], members[-1], members[half:])
        elif members is None and lo < hi:
            mid = (lo + hi) // 2
            self.plan_chunk(lo, mid, None)
            self.plan_chunk(mid + 1, hi, None)
        else:
            customer = members[0] if members else lo
            # The message may quote the row's data: masked like every log line.
            reason = mask_text(f"{type(exc).__name__}: {exc}")[:300]
            self.result.failed_customers[f"customer id {customer}: {reason}"] += 1
            log.error("customer id %s left out of this plan run: %s", customer, reason, exc_info=exc)

    def _plan(self, lo: int, hi: int, ids: Sequence[int] | None) -> ChunkOutput | None:
        out = ChunkOutput()
        candidates = self.candidates
        entrants = candidates.entrants(lo, hi, ids) if self.sources & {"schedule", "date"} else []
        if entrants and self.after_event_runs:
            entrants = self._judged_before(lo, hi, ids, entrants)
        event_entrants, event_rows = candidates.event_entrants(lo, hi, ids) if "events" in self.sources else ([], [])
        entrants.extend(event_entrants)
        waiting = candidates.waiting(lo, hi, ids, event_rows)
        if not entrants and not waiting and not event_rows:
            return None
        entrants, history = candidates.not_yet_entered(lo, hi, ids, entrants)
        customer_ids = sorted({e.customer_id for e in entrants} | {w.enrollment.customer_id for w in waiting})
        involved = {e.journey.id for e in entrants} | {w.enrollment.journey_id for w in waiting}
        needed = set().union(*(self.fields[j] for j in involved))
        # Conditions are judged from the earliest moment the chunk may act at on.
        since = min([self.start, self.start_now] + [e.due for e in entrants]
                    + [w.enrollment.step_started_at or w.next_at for w in waiting])
        facts = (load_customers(self.session, lo, hi, customer_ids, needed, self.end, since=since)
                 if customer_ids else {})
        entrants = candidates.in_audience(entrants, facts, out)
        events = candidates.customer_events(lo, hi, customer_ids, entrants, waiting)
        machine = StepMachine(self.now, self.end, out, self.look)
        by_id = {lj.id: lj for lj in self.journeys}
        entry_rules = {lj.id: step_graph(lj.journey).entry_rule for lj in self.journeys}
        # Journeys whose entrants need a look at their turn: an audience left for it
        # (``Candidates.audience_holds``), a re-entry rule beyond one entry per occurrence
        # (``EntryHistory.admits``); for the others both calls answer True and record nothing.
        at_turn = {lj.id for lj in self.journeys if self.look.of(lj.id).reads_updated}
        # Date entries an update step may move (``engine.planning.moved_anchors``), when the run takes date entries.
        moved = self.moved if self.moved.entries and "date" in self.sources else None
        if moved is not None:
            moved.new_chunk()
        reentry_checked = {lj.id for lj in self.journeys
                           if not lj.journey.reentry.allowed or lj.journey.reentry.after}
        order = itertools.count()
        # Each customer's agenda: the entrants, and a heap of (moment, journey, occurrence, tie,
        # enrollment under way); both taken in the order of (moment, journey, occurrence).
        arriving: dict[int, list[Entrant]] = defaultdict(list)
        for e in entrants:
            arriving[e.customer_id].append(e)
        under_way: dict[int, list[tuple[datetime, str, str, int, Progress]]] = defaultdict(list)
        resumed: list[Progress] = []
        asleep: dict[int, list[Progress]] = defaultdict(list)  # waiting past what the run may decide
        for w in waiting:
            enrollment = w.enrollment
            cf = facts.get(enrollment.customer_id)
            if cf is None:
                continue
            p = machine.resume(by_id[enrollment.journey_id], enrollment, w.scope)
            at = machine.schedule(p, cf, events.get(enrollment.customer_id, []))
            resumed.append(p)  # written only if the run moves it
            if at is None:
                # Nothing this run may do for it yet, unless an update changes what it waits for.
                if enrollment.journey_id in self.rejudged:
                    asleep[enrollment.customer_id].append(p)
                continue
            under_way[enrollment.customer_id].append(
                (at, enrollment.journey_id, enrollment.occurrence, next(order), p))
        for cid in sorted(arriving.keys() | under_way.keys()):
            cf = facts[cid]
            evs = events.get(cid, [])
            queue = arriving.get(cid, [])
            if len(queue) > 1:
                queue.sort(key=AGENDA_ORDER)
            heap = under_way.get(cid, [])
            heapq.heapify(heap)
            i = 0
            while i < len(queue) or heap:
                if heap and (i == len(queue) or heap[0][:3] < AGENDA_ORDER(queue[i])):
                    _at, jid, occurrence, _, p = heapq.heappop(heap)
                else:
                    e = queue[i]
                    i += 1
                    jid, occurrence = e.journey_id, e.occurrence
                    if (moved is not None and jid in moved.entries and not moved.still_fires(e, cf)) or (
                            jid in at_turn and not candidates.audience_holds(e, cf, out)) or (
                            jid in reentry_checked and not history.admits(e)):
                        continue
                    enrollment = PlannedEnrollment(
                        cid, jid, e.journey.version, occurrence, None, "active", None, None, e.due, None, None,
                        entry_rules[jid], event_id=e.event_id)
                    out.enrollments.append(enrollment)
                    p = machine.start(e.journey, enrollment, e.due, e.scope)
                turn = p.wake_at
                before = moved.values(cf) if moved is not None else None
                set_before = dict(out.attribute_changes.get(cid, {})) if self.rejudged else None
                nxt = machine.advance(p, cf, evs)
                if nxt is not None:
                    heapq.heappush(heap, (nxt, jid, occurrence, next(order), p))
                elif jid in self.rejudged and p.enrollment.state == "waiting":
                    asleep[cid].append(p)
                if set_before is not None and out.attribute_changes.get(cid, {}) != set_before:
                    assert turn is not None
                    heap = self._rejudge(machine, cf, evs, heap, asleep[cid], turn, order)
                if moved is not None and moved.values(cf) != before:
                    assert turn is not None
                    for new in moved.added(cf, (turn, jid, occurrence), queue[i:], candidates.window,
                                           lambda: moved.load(self.session, lo, hi, ids, history), out):
                        bisect.insort(queue, new, lo=i, key=AGENDA_ORDER)
        out.enrollments.extend(p.enrollment for p in resumed if p.changed)
        self._attribute_updates(out)
        out.events = list(event_rows)
        for cid, cf in facts.items():
            out.timezones[cid] = cf.timezone
            out.external_ids[cid] = cf.external_id
        self._deliver(lo, hi, facts, out)
        return out

    def _rejudge(self, machine: StepMachine, cf: CustomerFacts, evs: list[CustomerEvent],
                 heap: list[tuple[datetime, str, str, int, Progress]], asleep: list[Progress], at: datetime,
                 order: Iterator[int]) -> list[tuple[datetime, str, str, int, Progress]]:
        """The customer's agenda after an update at ``at``: their waits for an event whose condition reads
        an attribute an update step sets are judged again from then on (``StepMachine.rejudge``)."""
        kept = [item for item in heap if item[1] not in self.rejudged or item[4].mode == AT]
        again = [item[4] for item in heap if item[1] in self.rejudged and item[4].mode != AT] + asleep
        asleep.clear()
        for p in again:
            nxt = machine.rejudge(p, cf, evs, at)
            if nxt is None:
                asleep.append(p)
            else:
                kept.append((nxt, p.lj.id, p.enrollment.occurrence, next(order), p))
        heapq.heapify(kept)
        return kept

    def _judged_before(self, lo: int, hi: int, ids: Sequence[int] | None, entrants: list[Entrant]) -> list[Entrant]:
        """``entrants`` without those an event's run has judged: entries judged at their moment, due by
        the latest event of their customer acted on since the last written run. That run took them
        first (``_sources``), from the same cursor, with the attributes as they stood before the event's
        steps changed any; judged again here they would read what changed after their moment."""
        query = (select(Event.customer_id, func.max(Event.occurred_at))
                 .where(id_filter(col(Event.customer_id), lo, hi, ids), col(Event.processed_at).is_not(None),
                        col(Event.occurred_at) > self.start_now, col(Event.occurred_at) <= self.now,
                        col(Event.type).in_(sorted(listened_types(self.journeys))))
                 .group_by(Event.customer_id))
        judged = {cid: as_utc(at) for cid, at in self.session.execute(query).all()}
        if not judged:
            return entrants
        return [e for e in entrants if self.look.of(e.journey_id).entry_ahead
                or e.customer_id not in judged or e.due > judged[e.customer_id]]

    def _attribute_updates(self, out: ChunkOutput) -> None:
        """``out.updates``: the whole attributes of each customer an update step changed, read
        here for those few customers rather than decoded for the whole chunk up front."""
        if not out.attribute_changes:
            return
        cids = sorted(out.attribute_changes)
        for i in range(0, len(cids), 5000):
            for cid, attributes in self.session.execute(select(Customer.id, Customer.attributes).where(
                    col(Customer.id).in_(cids[i : i + 5000]))).all():
                out.updates[cid] = {**(attributes or {}), **out.attribute_changes[cid]}

    def _deliver(self, lo: int, hi: int, facts: dict[int, CustomerFacts], out: ChunkOutput) -> None:
        """Channel, time and cap for the chunk's wanted touches, each customer's together with the
        touches of theirs already stored that share a cap window with them."""
        wanted: dict[int, list[Wanted]] = defaultdict(list)
        for d in out.decisions:
            wanted[d.wanted.customer_id].append(d.wanted)
        out.decisions = []
        if not wanted:
            return
        window = parse_duration(self.config.marketing_cap_window)
        first = min(w.planned_for for ws in wanted.values() for w in ws)
        last = max(w.planned_for for ws in wanted.values() for w in ws)
        # The keys that may already be stored (the same touch planned before), and the marketing
        # touches in or after the cap windows of the earliest one (a local day starts up to a day
        # before its UTC date, quiet hours move a touch by less than a day).
        stored = stored_touches(self.session, and_(
            id_filter(col(Touch.customer_id), lo, hi, sorted(wanted)),
            or_(col(Touch.due_at) > first - window - timedelta(days=2),
                col(Touch.planned_for).between(first, last), *self._capped_since(first))), self.priorities)
        for cid, ws in wanted.items():
            decisions, changes = decide(ws, facts[cid].reach, self.config, stored.get(cid, ()), cid,
                                        journey_caps=self.journey_caps)
            out.decisions.extend(decisions)
            out.changes.extend(changes)

    def _capped_since(self, first: datetime) -> list[Any]:
        """SQL: the touches each journey's own cap and each channel's cap count, in its window before ``first``
        and after it."""
        journeys = [and_(col(Touch.journey_id) == journey_id, col(Touch.due_at) > first - window - timedelta(days=2))
                    for journey_id, (_, window) in sorted(self.journey_caps.items())]
        return journeys + [
            and_(col(Touch.channel) == channel, col(Touch.category) == "marketing",
                 col(Touch.due_at) > first - parse_duration(cap.window) - timedelta(days=2))
            for channel, cap in sorted(self.config.channel_caps.items())]

    def _write(self, out: ChunkOutput) -> None:
        """Write one chunk's output and commit (a method, so that a test can make a chunk's
        write fail)."""
        write_chunk(self.session, out, self.result, self.write_lock)
