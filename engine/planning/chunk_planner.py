"""One chunk of customers planned from start to finish: the unit a planner run (and each of its
worker processes) repeats.

Per chunk: the candidates are narrowed in SQL (``engine.planning.candidates``), facts are
loaded in bulk for those customers only (``engine.planning.facts``), new entrants and waiting
enrollments go through their steps (``engine.planning.step_machine``), delivery rules decide
channel, time and cap (``engine.planning.delivery_rules``), and the output goes to the sink
and, unless it is a dry run, to the writer (``engine.planning.plan_writer``), which commits
it. Nothing here decides how a book is cut into chunks or where they run: that is the
planner's (``engine.planning.planner``), which spawns worker processes that import this
module, never the planner.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy import select as _sa_select
from sqlmodel import Session, col

from engine.language.settings_model import DeliveryConfig
from engine.language.validation import LoadedJourney
from engine.planning.candidates import ALL_SOURCES, ENTRY_ORDER, Candidates
from engine.planning.delivery_rules import CapLedger, Wanted, apply
from engine.planning.facts import DROPPED, CustomerFacts, fetch_rows, id_filter, load_customers
from engine.planning.journeys_in_force import conditions_of
from engine.planning.plan_output import ChunkOutput, PlannedEnrollment, PlanResult, Sink
from engine.planning.plan_writer import write_chunk
from engine.planning.step_machine import StepMachine, duration, step_graph
from store.clock import as_utc
from store.models import Customer, Touch, TouchStatus

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed
# select() overloads reject; the queries here select plain columns, so use it untyped.
select: Any = _sa_select

CHUNK = 20_000


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
        dry_run: bool = False,
        sources: frozenset[str] = ALL_SOURCES,
        customer_ids: Sequence[int] | None = None,
        event_ids: Sequence[int] | None = None,
        sink: Sink | None = None,
        chunk: int = CHUNK,
        workers: int | None = None,
    ) -> None:
        self.session = session
        self.journeys = list(journeys)
        self.config = config
        self.start = as_utc(start)
        self.end = as_utc(end)
        self.dry_run = dry_run
        self.sources = sources
        self.customer_ids = sorted(set(customer_ids)) if customer_ids is not None else None
        self.event_ids = list(event_ids) if event_ids is not None else None
        self.sink = sink
        self.chunk = chunk
        self.workers = workers
        self.result = PlanResult(self.start, self.end, dry_run, journeys=[j.id for j in self.journeys])
        self.candidates = Candidates(session, self.journeys, self.start, self.end, sources=sources,
                                     customer_ids=self.customer_ids, event_ids=self.event_ids)
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
            self.fields[lj.id] = {f for cond in conditions_of(lj.journey) for f in cond.fields()}
        self.needed = set().union(*self.fields.values())

    def plan_chunk(self, lo: int, hi: int, ids: Sequence[int] | None) -> None:
        out = ChunkOutput()
        candidates = self.candidates
        entrants = candidates.entrants(lo, hi, ids) if self.sources & {"schedule", "date"} else []
        event_entrants, event_rows = candidates.event_entrants(lo, hi, ids) if "events" in self.sources else ([], [])
        entrants.extend(event_entrants)
        waiting = candidates.waiting(lo, hi, ids, event_rows)
        if not entrants and not waiting and not event_rows:
            return
        entrants = candidates.not_yet_entered(lo, hi, ids, entrants)
        customer_ids = sorted({e.customer_id for e in entrants} | {w.enrollment.customer_id for w in waiting})
        involved = {e.journey.id for e in entrants} | {w.enrollment.journey_id for w in waiting}
        needed = set().union(*(self.fields[j] for j in involved))
        facts = load_customers(self.session, lo, hi, customer_ids, needed, self.end) if customer_ids else {}
        entrants = candidates.in_audience(entrants, facts, out)
        events = candidates.customer_events(lo, hi, customer_ids, entrants, waiting)
        machine = StepMachine(self.end, out)
        for e in sorted(entrants, key=ENTRY_ORDER):
            cf = facts[e.customer_id]
            enrollment = PlannedEnrollment(
                e.customer_id, e.journey.id, e.journey.version, e.occurrence, None, "active", None, None,
                e.due, None, None, step_graph(e.journey.journey).entry_rule)
            machine.run(e.journey, cf, e.scope, events.get(e.customer_id, []), enrollment, 0, e.due, False)
            out.enrollments.append(enrollment)
        by_id = {lj.id: lj for lj in self.journeys}
        for w in waiting:
            enrollment = w.enrollment
            lj = by_id[enrollment.journey_id]
            waiting_facts = facts.get(enrollment.customer_id)
            if waiting_facts is None:
                continue
            steps = lj.journey.steps
            index = next((i for i, s in enumerate(steps) if s.id == enrollment.step_id), len(steps))
            step = steps[index] if index < len(steps) else None
            t = w.next_at
            if step is not None and step.wait_for is not None:
                t = w.next_at - duration(step.wait_for.timeout)  # the wait began here
            machine.run(lj, waiting_facts, w.scope, events.get(enrollment.customer_id, []), enrollment, index, t,
                        True)
            out.enrollments.append(enrollment)
        self._attribute_updates(out)
        out.events = list(event_rows)
        for cid, cf in facts.items():
            out.timezones[cid] = cf.timezone
            out.external_ids[cid] = cf.external_id
        self._deliver(lo, hi, customer_ids, facts, out)
        self.result.add(out)
        if self.sink is not None:
            self.sink(out)
        if self.dry_run:
            return
        self._write(out)

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

    def _deliver(self, lo: int, hi: int, customer_ids: list[int], facts: dict[int, CustomerFacts],
                 out: ChunkOutput) -> None:
        wanted: dict[int, list[Wanted]] = defaultdict(list)
        for d in out.decisions:
            wanted[d.wanted.customer_id].append(d.wanted)
        out.decisions = []
        if not wanted:
            return
        ledger = CapLedger.from_config(self.config)
        window = ledger.window
        first = min(w.planned_for for ws in wanted.values() for w in ws)
        last = max(w.planned_for for ws in wanted.values() for w in ws)
        rows = fetch_rows(self.session, select(Touch.customer_id, Touch.key, Touch.category, Touch.status,
                                               Touch.due_at, Touch.planned_for).where(
            id_filter(col(Touch.customer_id), lo, hi, sorted(wanted)),
            or_(and_(col(Touch.due_at) > first - window, col(Touch.due_at) < last + window + timedelta(days=1)),
                and_(col(Touch.planned_for) >= first, col(Touch.planned_for) <= last))))
        existing: dict[int, dict[str, datetime]] = defaultdict(dict)
        counted: list[tuple[int, datetime]] = []
        for cid, key, category, status, due, _planned in rows:
            existing[cid][key] = as_utc(due)
            if category == "marketing" and status not in (TouchStatus.CANCELLED, DROPPED):
                counted.append((cid, as_utc(due)))
        ledger.load(counted)
        for cid, ws in wanted.items():
            out.decisions.extend(apply(ws, facts[cid].reach, self.config, ledger, existing.get(cid)))

    def _write(self, out: ChunkOutput) -> None:
        """Write one chunk's output and commit (a method, so that a test can make a chunk's
        write fail)."""
        write_chunk(self.session, out, self.result, self.write_lock)
