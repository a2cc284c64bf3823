"""The planner: every touch and agent task due in (start, end], written idempotently.

Shape of a run (``plan``):
- Journeys in force come from ``engine.language.journey_registry`` (the last good version of a broken
  file stays in force). A journey with ``enabled: false`` runs only when the KeyValue
  ``journey_enabled:<id>`` says ``{"enabled": true}`` (dynamic adjustment sets it).
- The book is walked in chunks of customer ids. Per chunk, SQL narrows the entrants of
  each journey in bulk (tier, time zone with a firing in the window, ``birth_md`` codes,
  expiry/settlement date ranges, unprocessed events), facts are loaded in bulk
  (``engine.planning.facts``), conditions are evaluated by the rules engine (``engine.planning.rules``), the
  journey steps are run (``_Machine``), delivery rules decide channel, time and cap
  (``engine.planning.delivery_rules``), and the results are written with bulk
  ``INSERT … ON CONFLICT DO NOTHING`` on the idempotency keys. Each chunk commits on its own,
  so a crash halfway is repaired by running again.
- A large book (60,000+ customer ids) is planned on worker processes, one per core up to
  four (``engine.planning.plan_workers``; ``workers=`` or ``JOURNEYS_PLAN_WORKERS`` to choose); a
  small one, a run for given customers and a run with a ``sink`` stay in the caller's
  process. (A writer thread overlapping a chunk's write with the next chunk's planning was
  tried and removed: the driver takes the GIL back for every row it binds, so the two
  threads mostly took turns, and the one-process 100k-customer day ran 15% slower with it.)
- Idempotency: touch and task key ``customer:journey:step:occurrence``; enrollment unique
  on (customer, journey, occurrence). A customer already enrolled in an occurrence is not
  entered again, and waiting enrollments advance with a guarded UPDATE, so running twice,
  or two planners at once, creates nothing twice.
- Time: "now" for conditions and steps is the planned moment, never the wall clock, so a
  plan (and a dry run, and explain) is reproducible. An enrollment's ``entered_at`` is its
  entry's due time.

Touches dropped by a delivery rule are stored too, with status ``dropped`` and the reason in
``error_reason``: explain can show them and a re-run does not reconsider them. Dispatch only
takes ``planned`` rows. Planner-written touches leave ``enrollment_id`` empty (a bulk insert
that skips conflicts cannot return ids on both databases); journey, step and occurrence on
the touch identify its enrollment.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import operator
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal_column, or_, update
from sqlalchemy import select as _sa_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, col

from engine.language.conditions import epoch_seconds
from engine.language.durations import parse_duration
from engine.language.journey_model import Condition, Journey
from engine.language.settings_model import DeliveryConfig
from engine.language.validation import LoadedJourney
from engine.planning import rules
from engine.planning.delivery_rules import CapLedger, Decision, Wanted, apply
from engine.planning.facts import (
    DROPPED,
    CustomerFacts,
    claim_fact,
    event_fact,
    fetch_rows,
    id_filter,
    load_customers,
    policy_fact,
)
from engine.planning.occurrences import (
    anchor_date_range,
    anchor_fire,
    birth_md_candidates,
    birthday_fires,
    cron_fires,
    holiday_fires,
    local_naive,
)
from engine.planning.plan_workers import chunk_ranges, plan_in_processes, reachable_from_workers, workers_for
from store.clock import as_utc, utcnow, zone
from store.models import (
    AgentTask,
    Claim,
    Customer,
    Enrollment,
    Event,
    KeyValue,
    Policy,
    TaskStatus,
    Touch,
    TouchStatus,
)

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed
# select() overloads reject; the queries here select plain columns, so use it untyped.
select: Any = _sa_select

CHUNK = 20_000
CURSOR_KEY = "plan:last_end"
ENABLED_PREFIX = "journey_enabled:"
PRIORITY = {"high": 1, "normal": 2, "low": 3}
ALL_SOURCES = frozenset({"schedule", "date", "enrollments", "events"})


# --- what a run produces ---------------------------------------------------------------------


@dataclass(slots=True)
class PlannedTask:
    key: str
    customer_id: int
    journey_id: str
    journey_version: str
    step_id: str
    occurrence: str
    queue: str
    priority: int
    script: str | None
    assignee_id: int | None
    planned_for: datetime
    due_at: datetime
    timezone: str


@dataclass(slots=True)
class PlannedEnrollment:
    customer_id: int
    journey_id: str
    journey_version: str
    occurrence: str
    step_id: str | None
    state: str
    next_at: datetime | None
    split_branch: str | None
    entered_at: datetime
    exited_at: datetime | None
    exit_reason: str | None
    entry_rule: str | None
    existing_id: int | None = None
    previous_next_at: datetime | None = None


@dataclass
class ChunkOutput:
    decisions: list[Decision] = field(default_factory=list)
    tasks: list[PlannedTask] = field(default_factory=list)
    enrollments: list[PlannedEnrollment] = field(default_factory=list)
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: list[int] = field(default_factory=list)
    timezones: dict[int, str] = field(default_factory=dict)
    external_ids: dict[int, str] = field(default_factory=dict)
    audience: dict[tuple[int, str], bool] = field(default_factory=dict)
    # What update steps set, per customer in the order they ran; ``updates`` gets each
    # customer's whole attributes with these applied.
    attribute_changes: dict[int, dict[str, Any]] = field(default_factory=dict)


Sink = Callable[[ChunkOutput], None]


@dataclass
class PlanResult:
    start: datetime
    end: datetime
    dry_run: bool
    journeys: list[str] = field(default_factory=list)
    by_journey_channel: Counter[tuple[str, str]] = field(default_factory=Counter)
    tasks_by_queue: Counter[str] = field(default_factory=Counter)
    planned: int = 0
    moved: int = 0
    held: int = 0  # touches a rule kept back to a later time (quiet hours)
    dropped: Counter[str] = field(default_factory=Counter)
    tasks: int = 0
    touches_written: int = 0  # planned touches inserted (a re-run inserts none)
    dropped_written: int = 0  # dropped touches recorded for explain
    tasks_written: int = 0
    enrollments_written: int = 0
    enrollments_advanced: int = 0
    events_processed: int = 0
    problems: list[str] = field(default_factory=list)
    workers: int = 1  # processes that planned the run

    def add(self, out: ChunkOutput) -> None:
        for d in out.decisions:
            if d.planned:
                self.planned += 1
                self.by_journey_channel[(d.wanted.journey_id, d.channel)] += 1
                if d.moved_by:
                    self.moved += 1
                    self.held += 1
            else:
                self.dropped[d.dropped_by or "?"] += 1
        for t in out.tasks:
            self.tasks += 1
            self.tasks_by_queue[t.queue] += 1
        self.events_processed += len(out.events)

    def merge(self, other: PlanResult) -> None:
        """Add what another part of the same run did (a chunk planned in a worker process):
        every counter and count, so a count added to the class is merged too."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            elif isinstance(mine, int) and not isinstance(mine, bool) and f.name != "workers":
                setattr(self, f.name, mine + theirs)


# --- journeys in force -------------------------------------------------------------------------


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
    return out


def entry_rule(journey: Journey) -> str:
    entry = journey.entry
    if entry.schedule is not None:
        text = f"schedule {entry.schedule.cron}"
    elif entry.date is not None:
        anchor = entry.date.anchor + (f" {','.join(entry.date.holidays)}" if entry.date.holidays else "")
        text = f"date {anchor} {entry.date.offset} at {entry.date.at}"
    else:
        assert entry.event is not None
        text = f"event {entry.event.type}" + (f" when {entry.event.when.describe()}" if entry.event.when else "")
    tiers = ",".join(journey.audience.tiers) if journey.audience.tiers else "all tiers"
    text += f"; audience {tiers}" + (f" when {journey.audience.when.describe()}" if journey.audience.when else "")
    return text[:255]


# --- the step machine --------------------------------------------------------------------------


@dataclass(slots=True)
class _Entrant:
    customer_id: int
    journey: LoadedJourney
    occurrence: str
    due: datetime
    scope: dict[str, Any]
    event_id: int | None = None
    journey_id: str = ""  # journey.id, kept plain so that sorting needs no property call

    def __post_init__(self) -> None:
        self.journey_id = self.journey.journey.id


# The order entrants are taken in: by due time, then journey, then customer.
_ENTRY_ORDER = operator.attrgetter("due", "journey_id", "customer_id")


@dataclass
class _Waiting:
    """An enrollment row waiting for its time (or an event)."""

    id: int
    customer_id: int
    journey_id: str
    journey_version: str
    occurrence: str
    step_id: str | None
    state: str
    next_at: datetime
    split_branch: str | None
    entered_at: datetime
    entry_rule: str | None


@dataclass
class _CustomerEvent:
    id: int
    type: str
    occurred_at: datetime
    data: dict[str, Any]


# Durations and step graphs are asked for per enrollment and step; journeys hold a handful
# of distinct ones, so each is worked out once per process.
_duration = functools.lru_cache(maxsize=1024)(parse_duration)


@dataclass(frozen=True)
class _Graph:
    ids: dict[str, int]  # step id → index
    successors: list[list[str]]  # per step index, as Journey.successors gives them
    entry_rule: str


_graphs: dict[int, tuple[Journey, _Graph]] = {}


def _graph(journey: Journey) -> _Graph:
    known = _graphs.get(id(journey))
    if known is not None and known[0] is journey:
        return known[1]
    graph = _Graph({s.id: i for i, s in enumerate(journey.steps)},
                   [journey.successors(i) for i in range(len(journey.steps))], entry_rule(journey))
    if len(_graphs) > 10_000:  # journeys reloaded over and over in a long-lived process
        _graphs.clear()
    _graphs[id(journey)] = (journey, graph)  # the journey kept alive so its id is not reused
    return graph


def _split_point(customer_id: int, journey_id: str, occurrence: str, step_id: str) -> float:
    """A stable number in [0, 100) per customer, journey, occurrence and step: the same
    customer lands in the same variant however often the plan runs."""
    digest = hashlib.sha1(f"{customer_id}:{journey_id}:{occurrence}:{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


class _Machine:
    """Runs one enrollment's steps from a moment until it waits past the horizon or ends."""

    def __init__(self, horizon: datetime, out: ChunkOutput) -> None:
        self.horizon = horizon
        self.out = out

    def run(
        self,
        lj: LoadedJourney,
        facts: CustomerFacts,
        scope: dict[str, Any],
        events: list[_CustomerEvent],
        enrollment: PlannedEnrollment,
        index: int,
        t: datetime,
        resuming: bool,
    ) -> None:
        journey = lj.journey
        graph = _graph(journey)
        ids = graph.ids
        successors_of = graph.successors
        # The customer's own fact dict serves as is when there is no scope to add: it is only
        # written through by update steps (which write it anyway), and a matched event's
        # fields go into a copy below.
        fact = {**facts.fact, **scope} if scope else facts.fact
        guard = 0
        while True:
            guard += 1
            if guard > 10 * len(journey.steps) + 10:  # a branch loop with no wait in it
                self._finish(enrollment, "exited", t, "loop")
                return
            if resuming and journey.goal is not None and self._goal_reached(journey, fact, events, enrollment, t):
                return
            if index >= len(journey.steps):
                self._finish(enrollment, "done", t, "completed")
                return
            step = journey.steps[index]
            enrollment.step_id = step.id
            target: str
            if step.send is not None:
                urgent = bool(step.send.urgent) if step.send.urgent is not None else journey.urgent
                self.out.decisions.append(Decision(  # placeholder, decided by delivery rules later
                    Wanted(facts.id, journey.id, lj.version, step.id, enrollment.occurrence, journey.category,
                           urgent and journey.category == "service", journey.priority, list(step.send.channels),
                           step.send.template, t, enrollment.split_branch, enrollment.entry_rule),
                    "wanted", "", [], t))
                target = successors_of[index][0]
            elif step.task is not None:
                task = step.task
                key = f"{facts.id}:{journey.id}:{step.id}:{enrollment.occurrence}"
                self.out.tasks.append(PlannedTask(
                    key, facts.id, journey.id, lj.version, step.id, enrollment.occurrence, task.queue,
                    PRIORITY[task.priority], task.script, facts.advisor_id if task.assign == "advisor" else None,
                    t, t + _duration(task.due_within), facts.timezone))
                target = successors_of[index][0]
            elif step.update is not None:
                name = step.update.field[len("customer.attributes.") :]
                facts.attributes[name] = step.update.value
                fact[step.update.field] = step.update.value
                facts.fact[step.update.field] = step.update.value
                self.out.attribute_changes.setdefault(facts.id, {})[name] = step.update.value
                target = successors_of[index][0]
            elif step.wait is not None:
                until = t + _duration(step.wait)
                target = successors_of[index][0]
                if target == "exit":  # a wait with nothing after it: the journey is over
                    self._finish(enrollment, "done", until, "completed")
                    return
                if until > self.horizon:
                    self._wait(enrollment, target, until)
                    return
                t = until
                resuming = True
            elif step.wait_for is not None:
                wf = step.wait_for
                timeout = _duration(wf.timeout)
                began = enrollment.next_at - timeout if (resuming and enrollment.next_at) else t
                deadline = began + timeout
                hit = self._find_event(wf.event, wf.when, fact, events, began, min(deadline, self.horizon))
                successors = successors_of[index]
                if hit is not None:
                    t = hit.occurred_at
                    fact = {**fact, **event_fact(hit.type, hit.occurred_at, hit.data)}
                    target = successors[0]
                elif deadline <= self.horizon:
                    t = deadline
                    target = successors[1]
                else:
                    self._wait(enrollment, step.id, deadline)
                    return
                resuming = True
            elif step.branch is not None:
                target = successors_of[index][-1]
                now = epoch_seconds(t)
                for case_index, case in enumerate(step.branch.cases):
                    if rules.holds(case.when, fact, now):
                        target = successors_of[index][case_index]
                        break
            elif step.split is not None:
                point = _split_point(facts.id, journey.id, enrollment.occurrence, step.id)
                chosen = None
                edge = 0.0
                for variant_index, variant in enumerate(step.split.variants):
                    edge += variant.percent
                    if point < edge:
                        chosen = variant_index
                        break
                if chosen is None:
                    enrollment.split_branch = "holdout"
                    self._finish(enrollment, "exited", t, "holdout")
                    return
                enrollment.split_branch = step.split.variants[chosen].name
                target = successors_of[index][chosen]
            else:
                assert step.exit is not None
                self._finish(enrollment, "done", t, step.exit.reason)
                return
            if target == "exit":
                self._finish(enrollment, "done", t, "completed")
                return
            index = ids[target]

    def _goal_reached(
        self, journey: Journey, fact: dict[str, Any], events: list[_CustomerEvent], enrollment: PlannedEnrollment,
        t: datetime,
    ) -> bool:
        assert journey.goal is not None
        hit = self._find_event(journey.goal.event, journey.goal.when, fact, events, enrollment.entered_at, t)
        if hit is None:
            return False
        self._finish(enrollment, "exited", hit.occurred_at, "goal")
        return True

    @staticmethod
    def _find_event(
        event_type: str, when: Condition | None, fact: dict[str, Any], events: list[_CustomerEvent],
        after: datetime, until: datetime,
    ) -> _CustomerEvent | None:
        for ev in events:
            if ev.type != event_type or not (after < ev.occurred_at <= until):
                continue
            if when is None or rules.holds(when, {**fact, **event_fact(ev.type, ev.occurred_at, ev.data)},
                                           epoch_seconds(ev.occurred_at)):
                return ev
        return None

    @staticmethod
    def _wait(enrollment: PlannedEnrollment, step_id: str | None, until: datetime) -> None:
        enrollment.state = "waiting"
        enrollment.step_id = step_id
        enrollment.next_at = until

    @staticmethod
    def _finish(enrollment: PlannedEnrollment, state: str, at: datetime, reason: str) -> None:
        enrollment.state = state
        enrollment.next_at = None
        enrollment.exited_at = at
        enrollment.exit_reason = reason


@contextmanager
def _cyclic_gc_between_chunks() -> Iterator[None]:
    """Cyclic garbage collection off while a run works through its chunks.

    A chunk holds hundreds of thousands of live containers (facts, entrants, decisions) and
    makes almost no reference cycles; the collector, triggered by allocation counts, kept
    re-scanning them all: measured on a 100k-customer month, 40% of the planner's CPU time
    for nothing, with the same peak memory without it. ``run`` collects between chunks
    instead, and the previous setting comes back at the end.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- the planner ---------------------------------------------------------------------------------


class Planner:
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
        # Held while a chunk is written: worker processes writing one SQLite file pass a lock
        # shared between them, so a waiting writer wakes when the other commits instead of
        # polling with SQLite's busy timeout (up to 100 ms between tries).
        self.write_lock: AbstractContextManager[Any] = nullcontext()
        self._zone_rows: tuple[tuple[int, int, int | None], Sequence[Any]] | None = None
        self.dialect = session.get_bind().dialect.name
        # Fields each journey's conditions read: a chunk loads only those of the journeys it
        # runs (a day without the holiday journey reads no attributes, one without the
        # potential-tier journeys counts no logins).
        self.fields: dict[str, set[str]] = {}
        for lj in self.journeys:
            self.fields[lj.id] = {f for cond in conditions_of(lj.journey) for f in cond.fields()}
        self.needed = set().union(*self.fields.values())

    # -- driving ----------------------------------------------------------------------------------

    def run(self) -> PlanResult:
        with _cyclic_gc_between_chunks():
            if self.customer_ids is not None:
                if self.customer_ids:
                    self._chunk(self.customer_ids[0], self.customer_ids[-1], self.customer_ids)
                return self.result
            lo, hi = self.session.execute(select(func.min(Customer.id), func.max(Customer.id))).one()
            if lo is None:
                return self.result
            self.timezones = [
                tz for (tz,) in self.session.execute(select(Customer.timezone).distinct()).all()
            ]
            workers = workers_for(hi - lo + 1, self.chunk, self.workers)
            # A sink takes every chunk's output in this process, and a database in memory
            # exists only in it: such runs stay here.
            if self.sink is not None or not reachable_from_workers(self.session):
                workers = 1
            if workers > 1:
                self.result.workers = workers
                plan_in_processes(self, lo, hi, workers)
                return self.result
            for first, last in chunk_ranges(lo, hi, self.chunk):
                self._chunk(first, last, None)
                # The chunk's objects are gone by now (freed by reference counting); a young
                # generation pass clears whatever cycles it left while little is alive.
                gc.collect(1)
            return self.result

    def _zones(self) -> list[str]:
        zones = getattr(self, "timezones", None)
        if zones is None:
            ids = self.customer_ids or []
            zones = [tz for (tz,) in self.session.execute(
                select(Customer.timezone).where(col(Customer.id).in_(ids)).distinct()).all()]
            self.timezones = zones
        return zones

    def _chunk(self, lo: int, hi: int, ids: Sequence[int] | None) -> None:
        out = ChunkOutput()
        entrants = self._entrants(lo, hi, ids) if self.sources & {"schedule", "date"} else []
        event_entrants, event_rows = self._event_entrants(lo, hi, ids) if "events" in self.sources else ([], [])
        entrants.extend(event_entrants)
        waiting = self._waiting(lo, hi, ids, event_rows)
        if not entrants and not waiting and not event_rows:
            return
        entrants = self._not_yet_entered(lo, hi, ids, entrants)
        customer_ids = sorted({e.customer_id for e in entrants} | {w.customer_id for w, _ in waiting})
        involved = {e.journey.id for e in entrants} | {w.journey_id for w, _ in waiting}
        needed = set().union(*(self.fields[j] for j in involved))
        facts = load_customers(self.session, lo, hi, customer_ids, needed, self.end) if customer_ids else {}
        entrants = self._in_audience(entrants, facts, out)
        events = self._customer_events(lo, hi, customer_ids, entrants, waiting)
        machine = _Machine(self.end, out)
        for e in sorted(entrants, key=_ENTRY_ORDER):
            cf = facts[e.customer_id]
            enrollment = PlannedEnrollment(
                e.customer_id, e.journey.id, e.journey.version, e.occurrence, None, "active", None, None,
                e.due, None, None, _graph(e.journey.journey).entry_rule)
            machine.run(e.journey, cf, e.scope, events.get(e.customer_id, []), enrollment, 0, e.due, False)
            out.enrollments.append(enrollment)
        by_id = {lj.id: lj for lj in self.journeys}
        for row, scope in waiting:
            lj = by_id[row.journey_id]
            waiting_facts = facts.get(row.customer_id)
            if waiting_facts is None:
                continue
            enrollment = PlannedEnrollment(
                row.customer_id, row.journey_id, row.journey_version, row.occurrence, row.step_id, row.state,
                row.next_at, row.split_branch, row.entered_at, None, None, row.entry_rule,
                existing_id=row.id, previous_next_at=row.next_at)
            index = next((i for i, s in enumerate(lj.journey.steps) if s.id == row.step_id), len(lj.journey.steps))
            step = lj.journey.steps[index] if index < len(lj.journey.steps) else None
            t = row.next_at
            if step is not None and step.wait_for is not None:
                t = row.next_at - _duration(step.wait_for.timeout)  # the wait began here
            machine.run(lj, waiting_facts, scope, events.get(row.customer_id, []), enrollment, index, t, True)
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

    # -- who enters -------------------------------------------------------------------------------

    def _customer_scope(self, lo: int, hi: int, ids: Sequence[int] | None) -> Any:
        return id_filter(col(Customer.id), lo, hi, ids)

    def _in_zones(self, lo: int, hi: int, ids: Sequence[int] | None, tiers: Sequence[str] | None,
                  zones: list[str]) -> list[tuple[int, str]]:
        """(id, zone) of the chunk's customers in ``tiers`` (all when empty) living in ``zones``.

        Every cadence journey asks this of the same chunk; the zone is not indexed, so each
        asking in SQL read the chunk's customer rows again (the table is the largest in the
        store). The chunk's (id, tier, zone) are read once and filtered here instead.
        """
        key = (lo, hi, None if ids is None else id(ids))
        if self._zone_rows is None or self._zone_rows[0] != key:
            self._zone_rows = (key, fetch_rows(self.session, select(Customer.id, Customer.tier, Customer.timezone)
                                               .where(self._customer_scope(lo, hi, ids))))
        wanted_tiers = set(tiers) if tiers else None
        wanted_zones = set(zones)
        return [(cid, tz) for cid, tier, tz in self._zone_rows[1]
                if tz in wanted_zones and (wanted_tiers is None or tier in wanted_tiers)]

    def _entrants(self, lo: int, hi: int, ids: Sequence[int] | None) -> list[_Entrant]:
        out: list[_Entrant] = []
        self._zone_rows = None
        for lj in self.journeys:
            j = lj.journey
            tiers = j.audience.tiers
            tier_clause = col(Customer.tier).in_(tiers) if tiers else True
            if j.entry.schedule is not None and "schedule" in self.sources:
                fires = {tz: cron_fires(j.entry.schedule.cron, tz, self.start, self.end) for tz in self._zones()}
                zones = [tz for tz, f in fires.items() if f]
                if not zones:
                    continue
                for cid, tz in self._in_zones(lo, hi, ids, tiers, zones):
                    for label, due in fires[tz]:
                        out.append(_Entrant(cid, lj, label, due, {}))
            elif j.entry.date is not None and "date" in self.sources:
                out.extend(self._date_entrants(lj, lo, hi, ids, tier_clause))
        return out

    def _date_entrants(self, lj: LoadedJourney, lo: int, hi: int, ids: Sequence[int] | None,
                       tier_clause: Any) -> list[_Entrant]:
        entry = lj.journey.entry.date
        assert entry is not None
        out: list[_Entrant] = []
        if entry.anchor == "customer.birthday":
            codes = birth_md_candidates(self.start, self.end, entry.offset)
            rows = fetch_rows(self.session, select(Customer.id, Customer.timezone, Customer.birthday).where(
                self._customer_scope(lo, hi, ids), tier_clause, col(Customer.birth_md).in_(codes)))
            for cid, tz, birthday in rows:
                if birthday is None:
                    continue
                for label, due in birthday_fires(birthday, entry.at, entry.offset, tz, self.start, self.end):
                    out.append(_Entrant(cid, lj, label, due, {}))
        elif entry.anchor == "holiday":
            fires = {tz: holiday_fires(list(entry.holidays or []), entry.at, entry.offset, tz, self.start, self.end)
                     for tz in self._zones()}
            zones = [tz for tz, f in fires.items() if f]
            if zones:
                for cid, tz in self._in_zones(lo, hi, ids, lj.journey.audience.tiers, zones):
                    for label, due in fires[tz]:
                        out.append(_Entrant(cid, lj, label, due, {}))
        elif entry.anchor == "policy.expiry_date":
            first, last = anchor_date_range(self.start, self.end, entry.offset)
            rows = self.session.execute(
                select(Policy.id, Policy.customer_id, Customer.timezone, Policy.product_line, Policy.annual_premium,
                       Policy.start_date, Policy.expiry_date, Policy.status)
                .join(Customer, col(Customer.id) == col(Policy.customer_id))
                .where(self._customer_scope(lo, hi, ids), tier_clause, Policy.status == "active",
                       col(Policy.expiry_date) >= first, col(Policy.expiry_date) <= last)).all()
            for row in rows:
                due = anchor_fire(row.expiry_date, entry.at, entry.offset, row.timezone)
                if self.start < due <= self.end:
                    out.append(_Entrant(row.customer_id, lj, f"policy-{row.id}-{row.expiry_date.isoformat()}", due,
                                        policy_fact(row)))
        else:  # claim.settled_at
            first, last = anchor_date_range(self.start, self.end, entry.offset)
            rows = self.session.execute(
                select(Claim.id, Claim.customer_id, Customer.timezone, Claim.amount, Claim.status, Claim.filed_at,
                       Claim.settled_at, Policy.product_line)
                .join(Customer, col(Customer.id) == col(Claim.customer_id))
                .outerjoin(Policy, col(Policy.id) == col(Claim.policy_id))
                .where(self._customer_scope(lo, hi, ids), tier_clause, Claim.status == "settled",
                       col(Claim.settled_at) >= datetime.combine(first, datetime.min.time(), tzinfo=zone("UTC")),
                       col(Claim.settled_at) < datetime.combine(last, datetime.min.time(), tzinfo=zone("UTC"))
                       + timedelta(days=1))).all()
            for row in rows:
                settled_local = local_naive(row.settled_at, row.timezone).date()
                due = anchor_fire(settled_local, entry.at, entry.offset, row.timezone)
                if self.start < due <= self.end:
                    out.append(_Entrant(row.customer_id, lj, f"claim-{row.id}", due,
                                        claim_fact(row.amount, row.status, row.filed_at, row.settled_at,
                                                   row.product_line)))
        return out

    def _event_entrants(self, lo: int, hi: int, ids: Sequence[int] | None) -> tuple[list[_Entrant], list[int]]:
        by_type: dict[str, list[LoadedJourney]] = defaultdict(list)
        for lj in self.journeys:
            if lj.journey.entry.event is not None:
                by_type[lj.journey.entry.event.type].append(lj)
        query = select(Event.id, Event.customer_id, Event.type, Event.data, Event.occurred_at).where(
            id_filter(col(Event.customer_id), lo, hi, ids), col(Event.occurred_at) <= self.end)
        if self.event_ids is not None:
            query = query.where(col(Event.id).in_(self.event_ids))
        else:
            query = query.where(col(Event.processed_at).is_(None))
        rows = self.session.execute(query).all()
        out: list[_Entrant] = []
        claim_ids = {str((r.data or {}).get("claim_id")) for r in rows
                     if r.type.startswith("claim.") and (r.data or {}).get("claim_id")}
        claims: dict[str, Any] = {}
        if claim_ids:
            for claim_row in self.session.execute(
                select(Claim.external_id, Claim.amount, Claim.status, Claim.filed_at, Claim.settled_at,
                       Policy.product_line).outerjoin(Policy, col(Policy.id) == col(Claim.policy_id))
                .where(col(Claim.external_id).in_(sorted(claim_ids)))).all():
                claims[claim_row.external_id] = claim_row
        for r in rows:
            for lj in by_type.get(r.type, []):
                data = dict(r.data or {})
                scope = event_fact(r.type, r.occurred_at, data)
                if r.type.startswith("claim."):
                    c = claims.get(str(data.get("claim_id")))
                    scope.update(claim_fact(c.amount, c.status, c.filed_at, c.settled_at, c.product_line) if c else
                                 claim_fact(data.get("amount"), None, None, None, data.get("product_line")))
                out.append(_Entrant(r.customer_id, lj, f"event-{r.id}", as_utc(r.occurred_at), scope, r.id))
        return out, [r.id for r in rows]

    def _not_yet_entered(self, lo: int, hi: int, ids: Sequence[int] | None,
                         entrants: list[_Entrant]) -> list[_Entrant]:
        """Drop entrants already enrolled in that occurrence, and those the re-entry rule keeps out."""
        if not entrants:
            return entrants
        journeys = sorted({e.journey.id for e in entrants})
        lookback = max((_duration(e.journey.journey.reentry.after) for e in entrants
                        if e.journey.journey.reentry.after), default=timedelta(0))
        since = min(e.due for e in entrants) - lookback - timedelta(seconds=1)
        cids = sorted({e.customer_id for e in entrants})
        rows = fetch_rows(self.session,
            select(Enrollment.customer_id, Enrollment.journey_id, Enrollment.occurrence, Enrollment.entered_at).where(
                id_filter(col(Enrollment.customer_id), lo, hi, cids), col(Enrollment.journey_id).in_(journeys),
                col(Enrollment.entered_at) > since))
        seen: set[tuple[int, str, str]] = set()
        entries: dict[tuple[int, str], list[datetime]] = defaultdict(list)
        for cid, jid, occ, entered in rows:
            seen.add((cid, jid, occ))
            entries[(cid, jid)].append(as_utc(entered))
        by_id = {e.journey.id: e.journey.journey for e in entrants}
        once = [j for j in journeys if not by_id[j].reentry.allowed]
        ever: set[tuple[int, str]] = set()
        if once:
            ever = {(cid, jid) for cid, jid in self.session.execute(
                select(Enrollment.customer_id, Enrollment.journey_id).where(
                    id_filter(col(Enrollment.customer_id), lo, hi, cids), col(Enrollment.journey_id).in_(once))
                .distinct()).all()}
        kept: list[_Entrant] = []
        for e in sorted(entrants, key=_ENTRY_ORDER):
            k = (e.customer_id, e.journey.id)
            if (e.customer_id, e.journey.id, e.occurrence) in seen:
                continue
            reentry = e.journey.journey.reentry
            if not reentry.allowed and (k in ever or entries.get(k)):
                continue
            if reentry.after and any(e.due - prev < _duration(reentry.after) for prev in entries.get(k, [])
                                     if prev <= e.due):
                continue
            entries[k].append(e.due)
            seen.add((e.customer_id, e.journey.id, e.occurrence))
            kept.append(e)
        return kept

    def _in_audience(
        self, entrants: list[_Entrant], facts: dict[int, CustomerFacts], out: ChunkOutput
    ) -> list[_Entrant]:
        by_journey: dict[str, list[_Entrant]] = defaultdict(list)
        for e in entrants:
            cf = facts.get(e.customer_id)
            if cf is None:
                continue
            tiers = e.journey.journey.audience.tiers
            if tiers and cf.tier not in tiers:
                out.audience[(e.customer_id, e.journey.id)] = False
                continue
            by_journey[e.journey.id].append(e)
        kept: list[_Entrant] = []
        for group in by_journey.values():
            j = group[0].journey.journey
            conds = [c for c in (j.audience.when, j.entry.event.when if j.entry.event else None) if c is not None]
            passing = [True] * len(group)
            for cond in conds:
                todo = [i for i, ok in enumerate(passing) if ok]
                if not todo:
                    break
                results = rules.evaluate_many(
                    cond, [{**facts[group[i].customer_id].fact, **group[i].scope} for i in todo],
                    [epoch_seconds(group[i].due) for i in todo])
                for i, ok in zip(todo, results, strict=True):
                    passing[i] = ok
            for e, ok in zip(group, passing, strict=True):
                out.audience[(e.customer_id, e.journey.id)] = ok
                if ok:
                    kept.append(e)
        return kept

    # -- journeys under way -----------------------------------------------------------------------

    def _waiting(self, lo: int, hi: int, ids: Sequence[int] | None,
                 event_rows: list[int]) -> list[tuple[_Waiting, dict[str, Any]]]:
        journeys = {lj.id: lj for lj in self.journeys}
        if not journeys:
            return []
        clauses = []
        if "enrollments" in self.sources:
            clauses.append(col(Enrollment.next_at) <= self.end)
        if "events" in self.sources and event_rows:
            # An event may end a wait_for or reach a goal before the enrollment's own time.
            types = sorted({t for (t,) in self.session.execute(
                select(Event.type).where(col(Event.id).in_(event_rows)).distinct()).all()})
            waiting_on = set()
            for lj in self.journeys:
                if lj.journey.goal is not None and lj.journey.goal.event in types:
                    waiting_on.add(lj.id)
                if any(s.wait_for is not None and s.wait_for.event in types for s in lj.journey.steps):
                    waiting_on.add(lj.id)
            if waiting_on:
                cids = sorted({cid for (cid,) in self.session.execute(
                    select(Event.customer_id).where(col(Event.id).in_(event_rows)).distinct()).all()})
                clauses.append(and_(col(Enrollment.journey_id).in_(sorted(waiting_on)),
                                    col(Enrollment.customer_id).in_(cids)))
        if not clauses:
            return []
        rows = self.session.execute(select(
            Enrollment.id, Enrollment.customer_id, Enrollment.journey_id, Enrollment.journey_version,
            Enrollment.occurrence, Enrollment.step_id, Enrollment.state, Enrollment.next_at, Enrollment.split_branch,
            Enrollment.entered_at, Enrollment.entry_rule).where(
            # The literal lets the databases use the partial index over waiting rows.
            id_filter(col(Enrollment.customer_id), lo, hi, ids), col(Enrollment.state) == literal_column("'waiting'"),
            col(Enrollment.journey_id).in_(sorted(journeys)), or_(*clauses))).all()
        entry_events = [int(r.occurrence.split("-", 1)[1]) for r in rows if r.occurrence.startswith("event-")]
        scopes: dict[int, dict[str, Any]] = {}
        for i in range(0, len(entry_events), 5000):
            for ev_id, ev_type, occurred, data in self.session.execute(
                select(Event.id, Event.type, Event.occurred_at, Event.data).where(
                    col(Event.id).in_(entry_events[i : i + 5000]))).all():
                scopes[ev_id] = event_fact(ev_type, as_utc(occurred), data)
        out: list[tuple[_Waiting, dict[str, Any]]] = []
        for r in rows:
            scope = scopes.get(int(r.occurrence.split("-", 1)[1]), {}) if r.occurrence.startswith("event-") else {}
            out.append((_Waiting(r.id, r.customer_id, r.journey_id, r.journey_version, r.occurrence, r.step_id,
                                 r.state, as_utc(r.next_at), r.split_branch, as_utc(r.entered_at), r.entry_rule),
                        scope))
        return out

    def _customer_events(self, lo: int, hi: int, customer_ids: list[int], entrants: list[_Entrant],
                         waiting: list[tuple[_Waiting, dict[str, Any]]]) -> dict[int, list[_CustomerEvent]]:
        types: set[str] = set()
        involved = {e.journey.id for e in entrants} | {w.journey_id for w, _ in waiting}
        for lj in self.journeys:
            if lj.id not in involved:
                continue
            if lj.journey.goal is not None:
                types.add(lj.journey.goal.event)
            types.update(s.wait_for.event for s in lj.journey.steps if s.wait_for is not None)
        if not types or not customer_ids:
            return {}
        since = min([e.due for e in entrants] + [w.entered_at for w, _ in waiting])
        rows = self.session.execute(select(
            Event.id, Event.customer_id, Event.type, Event.data, Event.occurred_at).where(
            id_filter(col(Event.customer_id), lo, hi, customer_ids), col(Event.type).in_(sorted(types)),
            col(Event.occurred_at) > since, col(Event.occurred_at) <= self.end)).all()
        out: dict[int, list[_CustomerEvent]] = defaultdict(list)
        for r in rows:
            out[r.customer_id].append(_CustomerEvent(r.id, r.type, as_utc(r.occurred_at), dict(r.data or {})))
        for evs in out.values():
            evs.sort(key=lambda ev: (ev.occurred_at, ev.id))
        return out

    # -- delivery rules ---------------------------------------------------------------------------

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

    # -- writing ----------------------------------------------------------------------------------

    def _batch(self, model: Any, names: Sequence[str], rows: list[tuple[Any, ...]], conflict: list[str]) -> _Batch:
        """An insert of ``rows`` (values in the order of ``names``) that skips those whose
        ``conflict`` key exists, with every value already in the form the driver takes: all
        the Python work of a write is done before it takes the database's write lock."""
        table = model.__table__
        if not rows:
            return _Batch("", [])
        if self.dialect != "sqlite":
            stmt = pg_insert(table).on_conflict_do_nothing(index_elements=conflict).returning(table.c.id)
            return _Batch(stmt, [dict(zip(names, r, strict=True)) for r in rows])
        # SQLite: SQLAlchemy's insertmanyvalues path costs more per row (parameter
        # construction, type processing of every cell, RETURNING) than SQLite does to store
        # it, so the column values are converted once here with the columns' own bind
        # processors (same stored form) and handed to the driver's executemany. Its rowcount
        # counts only the rows inserted: a conflict skipped by DO NOTHING changes nothing.
        dialect = self.session.get_bind().dialect
        columns = [_processed(table.c[name], values, dialect) for name, values in
                   zip(names, zip(*rows, strict=True), strict=True)]
        quote = dialect.identifier_preparer.quote
        sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
               f"VALUES ({', '.join('?' for _ in names)}) "
               f"ON CONFLICT ({', '.join(quote(n) for n in conflict)}) DO NOTHING")
        return _Batch(sql, list(zip(*columns, strict=True)))

    @staticmethod
    def _insert(session: Session, batch: _Batch) -> int:
        """Run ``batch``; the number of rows actually inserted."""
        if not batch.rows:
            return 0
        if isinstance(batch.statement, str):
            return int(session.connection().exec_driver_sql(batch.statement, batch.rows).rowcount)
        written = 0
        for i in range(0, len(batch.rows), 5000):
            written += len(session.execute(batch.statement, batch.rows[i : i + 5000]).all())
        return written

    def _write(self, out: ChunkOutput) -> None:
        """Write one chunk's output and commit."""
        now = utcnow()
        s = self.session
        enrollments = self._batch(Enrollment, ENROLLMENT_COLUMNS, [
            (e.customer_id, e.journey_id, e.journey_version, e.occurrence, e.step_id, e.state, e.next_at,
             e.split_branch, e.entered_at, e.exited_at, e.exit_reason, e.entry_rule)
            for e in out.enrollments if e.existing_id is None], ["customer_id", "journey_id", "occurrence"])
        advanced = [{
            "eid": e.existing_id, "old_next": e.previous_next_at, "new_step": e.step_id, "new_state": e.state,
            "new_next": e.next_at, "new_split": e.split_branch, "new_exited": e.exited_at,
            "new_reason": e.exit_reason} for e in out.enrollments if e.existing_id is not None]
        planned: list[tuple[Any, ...]] = []
        dropped: list[tuple[Any, ...]] = []
        for d in out.decisions:
            w = d.wanted
            row = (w.key, w.customer_id, w.journey_id, w.journey_version, w.step_id, w.occurrence, w.category,
                   w.urgent, d.channel, d.fallback_channels, w.template, w.split_branch, w.entry_rule,
                   w.planned_for, d.due_at)
            if d.planned:
                planned.append((*row, TouchStatus.PLANNED, None, 0, now))
            else:
                dropped.append((*row, DROPPED, f"{d.dropped_by}: {d.reason}"[:255], 0, now))
        touches = self._batch(Touch, TOUCH_COLUMNS, planned, ["key"])
        dropped_touches = self._batch(Touch, TOUCH_COLUMNS, dropped, ["key"])
        tasks = self._batch(AgentTask, TASK_COLUMNS, [
            (t.key, t.customer_id, t.journey_id, t.journey_version, t.step_id, t.occurrence, t.queue, t.priority,
             t.script, t.assignee_id, TaskStatus.OPEN, t.due_at, now, 1, False) for t in out.tasks], ["key"])
        with self.write_lock:
            self.result.enrollments_written += self._insert(s, enrollments)
            if advanced:
                t = Enrollment.__table__  # type: ignore[attr-defined]
                # Guarded: only the planner that still sees the row waiting at the same time advances it.
                stmt = update(t).where(
                    t.c.id == _bind("eid"), t.c.state == "waiting", t.c.next_at == _bind("old_next")).values(
                    step_id=_bind("new_step"), state=_bind("new_state"), next_at=_bind("new_next"),
                    split_branch=_bind("new_split"), exited_at=_bind("new_exited"), exit_reason=_bind("new_reason"))
                s.connection().execute(stmt, advanced)
                self.result.enrollments_advanced += len(advanced)
            self.result.touches_written += self._insert(s, touches)
            self.result.dropped_written += self._insert(s, dropped_touches)
            self.result.tasks_written += self._insert(s, tasks)
            if out.updates:
                ct = Customer.__table__  # type: ignore[attr-defined]
                s.connection().execute(
                    update(ct).where(ct.c.id == _bind("cid")).values(attributes=_bind("attrs"), updated_at=now),
                    [{"cid": cid, "attrs": attrs} for cid, attrs in out.updates.items()])
            if out.events:
                et = Event.__table__  # type: ignore[attr-defined]
                s.connection().execute(update(et).where(et.c.id.in_(out.events), et.c.processed_at.is_(None))
                                       .values(processed_at=now))
            s.commit()


@dataclass(frozen=True)
class _Batch:
    """One prepared insert: SQL text and driver-ready rows (SQLite), or a SQLAlchemy
    statement and row dicts (PostgreSQL)."""

    statement: Any
    rows: list[Any]


ENROLLMENT_COLUMNS = ("customer_id", "journey_id", "journey_version", "occurrence", "step_id", "state", "next_at",
                      "split_branch", "entered_at", "exited_at", "exit_reason", "entry_rule")
TOUCH_COLUMNS = ("key", "customer_id", "journey_id", "journey_version", "step_id", "occurrence", "category",
                 "urgent", "channel", "fallback_channels", "template", "split_branch", "entry_rule", "planned_for",
                 "due_at", "status", "error_reason", "attempts", "created_at")
TASK_COLUMNS = ("key", "customer_id", "journey_id", "journey_version", "step_id", "occurrence", "queue", "priority",
                "script", "assignee_id", "status", "due_at", "created_at", "attempt", "escalated")


def _processed(column: Any, values: Sequence[Any], dialect: Any) -> Sequence[Any]:
    """``values`` of ``column`` in the form its type binds them on ``dialect``."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return values
    # A chunk's values repeat (a few due times per zone, a few fallback lists), so each
    # distinct one is converted once.
    seen: dict[Any, Any] = {}
    out = []
    for v in values:
        key = tuple(v) if isinstance(v, list) else v  # fallback channels: a few distinct lists
        try:
            p = seen[key]
        except KeyError:
            p = seen[key] = process(v)
        except TypeError:
            p = process(v)
        out.append(p)
    return out


def _bind(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name)


# --- entry points --------------------------------------------------------------------------------


def _cursor(session: Session) -> datetime | None:
    row = session.get(KeyValue, CURSOR_KEY)
    if row is None or not row.value.get("end"):
        return None
    return as_utc(datetime.fromisoformat(row.value["end"]))


def _set_cursor(session: Session, end: datetime) -> None:
    row = session.get(KeyValue, CURSOR_KEY)
    previous = _cursor(session)
    if previous is not None and previous >= end:
        return  # never move the cursor back (a re-plan of an old window)
    if row is None:
        session.add(KeyValue(key=CURSOR_KEY, value={"end": end.isoformat()}, updated_at=utcnow()))
    else:
        row.value = {"end": end.isoformat()}
        row.updated_at = utcnow()
    session.commit()


def plan(
    at: datetime,
    start: datetime | None = None,
    *,
    dry_run: bool = False,
    url: str | None = None,
    directory: Any = None,
    delivery: DeliveryConfig | None = None,
    customer_ids: Sequence[int] | None = None,
    sink: Sink | None = None,
    chunk: int = CHUNK,
    workers: int | None = None,
) -> PlanResult:
    """Plan every touch and task due in (start, at]; start defaults to where the last plan
    ended (KeyValue ``plan:last_end``), on the first run ``at`` minus one day.

    Writes touches, tasks, enrollments and attribute updates unless ``dry_run``; a dry run
    writes nothing at all (not even the published journey versions).

    ``workers``: processes planning a whole book (``engine.planning.plan_workers``); by default one
    per core (up to four) for a large book, one for a small one or a run with a ``sink``.
    """
    from engine.language.journey_registry import load_delivery_config, load_in_force
    from store.db import get_engine

    end = as_utc(at)
    with Session(get_engine(url), expire_on_commit=False) as session:
        in_force = load_in_force(session, directory)
        if dry_run:
            session.rollback()
        else:
            session.commit()
        if start is None:
            start = _cursor(session) or end - timedelta(days=1)
        config = delivery or load_delivery_config()
        journeys = active_journeys(session, in_force.journeys.values())
        planner = Planner(session, journeys, config, as_utc(start), end, dry_run=dry_run,
                          customer_ids=customer_ids, sink=sink, chunk=chunk, workers=workers)
        result = planner.run()
        result.problems = [str(p) for p in in_force.problems]
        if dry_run:
            session.rollback()
        elif customer_ids is None:
            _set_cursor(session, end)
        return result


def local_iso(moment: datetime, tz: str) -> str:
    """ISO 8601 with the customer's local UTC offset."""
    return as_utc(moment).astimezone(zone(tz)).isoformat()


def decision_json(d: Decision, tz: str) -> dict[str, Any]:
    return {
        "customer_id": d.wanted.customer_id, "journey": d.wanted.journey_id, "step": d.wanted.step_id,
        "channel": d.channel, "template": d.wanted.template, "due_at": local_iso(d.due_at, tz),
        "key": d.wanted.key, "category": d.wanted.category, "urgent": d.wanted.urgent,
    }
