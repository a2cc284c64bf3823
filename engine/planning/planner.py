"""The planner: every touch and agent task due in (start, end], written idempotently.

**The contract: one result however time is sliced.** For any book, journeys and event stream,
one dry run over (A, C] plans exactly what any sequence of written runs (A, B1], (B1, B2] …
(Bn, C] writes, with events arriving between runs (``engine.loop.events``, which acts on each
at once), and exactly what ``journeys run`` writes with its 5-minute ticks that plan ahead
(``plan_ahead``): the same touches, agent tasks, due times, channels, drop reasons and
enrollment exits. A dry run resumes from the store exactly as a written run does, so a
preview is what will happen when no other event arrives. ``tests/planning/test_slicing_invariance.py``
holds the planner to it. What makes it hold:

- *Time is the planned moment, never the wall clock*, and every condition is judged at the
  moment it applies to: counts over the last N days, the latest NPS answer or churn risk,
  ages (``engine.planning.facts.facts_at``); the event that started an enrollment, its policy
  or claim, and the event its last ``wait_for`` ended on are in scope again when it resumes.
- *A customer's agenda is taken in the order of time* (``engine.planning.chunk_planner``):
  entries, waits that end and events, whichever journey they belong to, so an attribute an
  update step sets is seen by the conditions judged after it and by no earlier one. An
  event's run (``engine.loop.events``) first takes what its customer had due before it when a
  scheduled or dated journey sets an attribute some condition reads, or such an entry reads an
  attribute any update step sets (``Lookahead.entries_before_events``), and the later runs
  leave those entries as it judged them; otherwise nothing those entries do reaches the
  event's journeys, and the cap's contest decides the day whichever run planned its touches.
- *A waiting enrollment says where it is*: the step, when it arrived there
  (``Enrollment.step_started_at``) and when to look again (``next_at``), so a ``wait_for``
  picked up by a later run keeps its own deadline (``engine.planning.step_machine``).
- *Nothing is decided ahead of what is known* (``engine.planning.lookahead``): a run stands
  at its ``now`` (what has been reported up to then) and may plan ahead to its ``end`` only
  what no later event can change. A ``wait_for`` times out, a goal journey moves past a
  wait, an agent task appears, an attribute changes and a condition on event-driven facts
  is judged only once its moment has come.
- *The cap and priority judge a customer's local day, not a run* (``engine.planning.delivery_rules``):
  the contest over a customer's marketing touches is re-run, from the day of any new one, with
  the touches already stored; a planned touch that loses its place to a touch of higher priority
  arriving later (an event's) is dropped, with the reason ``pre-empted by <journey>``.

Outside the contract: an event reported after the moment it happened, once runs have passed
that moment (what was planned without it stays), a touch already being sent when a touch of
higher priority arrives for its day (it counts, the newcomer is judged around it), and
``customer.marketing_touches_7d``, which counts the touches stored when a run starts.

Shape of a run (``plan``):
- Journeys in force come from ``engine.language.journey_registry`` (the last good version of a broken
  file stays in force). A journey with ``enabled: false`` runs only when the KeyValue
  ``journey_enabled:<id>`` says ``{"enabled": true}`` (dynamic adjustment sets it).
- The book is walked in chunks of customer ids, only those holding a customer with anything due
  in the window (``engine.planning.due_chunks``: one indexed query per source first). Per chunk,
  SQL narrows the entrants of each journey in bulk (tier, time zone with a firing in the window, ``birth_md`` codes,
  expiry/settlement date ranges, unprocessed events), facts are loaded in bulk
  (``engine.planning.facts``), conditions are evaluated by the rules engine (``engine.planning.rules``), the
  journey steps are run (``engine.planning.step_machine``), delivery rules decide channel, time and cap
  (``engine.planning.delivery_rules``), and the results are written with bulk
  ``INSERT … ON CONFLICT DO NOTHING`` on the idempotency keys (``engine.planning.plan_writer``).
  One chunk's planning is ``engine.planning.chunk_planner``, the SQL narrowing of its customers
  ``engine.planning.candidates``. Each chunk commits on its own, so a crash halfway is repaired
  by running again.
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
- Windows: a run stands at ``at`` (its ``now``) and plans up to ``ahead`` (default ``at``). The
  cursor (KeyValue ``plan:last_end``) keeps both, and the next run starts from them: entries
  judged at their moment from the last ``now``, the others from the last end. An
  enrollment's ``entered_at`` is its entry's due time.
- After downtime the first run plans the whole missed window, chunk by chunk of customers (memory
  bounded by a chunk, one transaction each), and says how far it has got (``progress``); the cursor
  moves at the end, so a run that dies halfway is planned again from the same cursor, writing only
  what it had not. What is then too late to send is dropped by dispatch (``engine.sending.expiry``).

Touches dropped by a delivery rule are stored too, with status ``dropped`` and the reason in
``error_reason``: explain can show them and a re-run does not reconsider them, unless the cap
decides their day again. Dispatch only takes ``planned`` rows. Planner-written touches leave
``enrollment_id`` empty (a bulk insert that skips conflicts cannot return ids on both
databases); journey, step and occurrence on the touch identify its enrollment. Everything a
run prints or returns names customers by their external id.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as _sa_select
from sqlmodel import Session

from engine.language.durations import format_duration
from engine.language.settings_model import DeliveryConfig
from engine.planning import late_arrivals, tier_moves
from engine.planning.chunk_planner import CHUNK, CURSOR_KEY, ChunkPlanner, read_cursor
from engine.planning.delivery_rules import Decision
from engine.planning.due_chunks import book_zones, due_ranges
from engine.planning.journeys_in_force import active_journeys, conditions_of, switched_on
from engine.planning.lookahead import through_next_local_day
from engine.planning.plan_output import ChunkOutput, PlanResult, Sink
from engine.planning.plan_workers import plan_in_processes, reachable_from_workers, workers_for
from store.clock import as_utc, utcnow, zone
from store.models import Customer, KeyValue

# What callers take from the planner. The run's types and the journey helpers live in lower
# modules, so that the chunk planner and the worker processes need not import this one.
__all__ = [
    "CHUNK", "ChunkOutput", "ChunkPlanner", "PlanResult", "Planner", "Sink", "active_journeys", "conditions_of",
    "decision_json", "local_iso", "plan", "plan_ahead", "switched_on", "through_next_local_day",
]

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed
# select() overloads reject; the queries here select plain columns, so use it untyped.
select: Any = _sa_select


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


# Plans a run's chunks somewhere else and adds what they did to ``planner.result``: the
# runtime's Prefect workers (``engine.runtime.plan_slices``). The planner only cuts the book.
ChunkRunner = Callable[["Planner", list[tuple[int, int]]], None]
# Told one line at a time how a long run gets on (``plan(progress=…)``): the service's plan flow logs them.
Progress = Callable[[str], None]
# A run that starts further back than this behind its ``now`` is catching up (the service was down, a
# deploy, a failover): it says so, and how far it has got chunk by chunk. A tick starts 5 minutes back.
CATCH_UP = timedelta(minutes=30)


class Planner(ChunkPlanner):
    """A whole run: the given customers in one chunk, or the book in chunks of customer ids,
    in this process, on worker processes (``engine.planning.plan_workers``) or through a
    ``chunk_runner``."""

    chunk_runner: ChunkRunner | None = None
    progress: Progress | None = None

    def _end_reads(self) -> None:
        """End the read transaction that found the chunks before others plan them, for minutes
        on a large book. On PostgreSQL an open one held its snapshot all that time (seen as
        "idle in transaction" through a 1M-customer day), which keeps vacuum from clearing what
        the workers' own updates leave behind; SQLite's driver holds no snapshot between reads
        (the day's write-ahead log peaked at 29-30 MB either way on 100k customers). Nothing is
        pending here (the run has only read), and a dry run's transaction is rolled back as it
        would be at the end."""
        if self.dry_run:
            self.session.rollback()
        else:
            self.session.commit()

    def run(self) -> PlanResult:
        with _cyclic_gc_between_chunks():
            if self.customer_ids is not None:
                if self.customer_ids:
                    self.plan_chunk(self.customer_ids[0], self.customer_ids[-1], self.customer_ids)
                return self.result
            # Two subqueries, each one index probe: SQLite answers MIN and MAX together in one
            # SELECT by reading the whole table, which made every tick grow with the book.
            lo, hi = self.session.execute(select(select(func.min(Customer.id)).scalar_subquery(),
                                                 select(func.max(Customer.id)).scalar_subquery())).one()
            if lo is None:
                return self.result
            self.candidates.timezones = book_zones(self.session)
            # Only the chunks with something due (``engine.planning.due_chunks``): a tick that
            # finds nothing costs what is due, not what the book holds.
            ranges = due_ranges(self.candidates, lo, hi, self.chunk)
            if self.chunk_runner is not None and ranges:
                self._end_reads()
                self.chunk_runner(self, ranges)  # elsewhere: Prefect workers (``engine.runtime``)
                return self.result
            workers = workers_for(sum(last - first + 1 for first, last in ranges), self.chunk, self.workers)
            # A sink takes every chunk's output in this process, and a database in memory
            # exists only in it: such runs stay here.
            if self.sink is not None or not reachable_from_workers(self.session):
                workers = 1
            if workers > 1:
                self.result.workers = workers
                self._end_reads()
                plan_in_processes(self, ranges, workers, self._catching_up(ranges))
                return self.result
            tell = self._catching_up(ranges)
            for first, last in ranges:
                self.plan_chunk(first, last, None)
                # The chunk's objects are gone by now (freed by reference counting); a young
                # generation pass clears whatever cycles it left while little is alive.
                gc.collect(1)
                if tell is not None:
                    tell()
            return self.result

    def _catching_up(self, ranges: list[tuple[int, int]]) -> Callable[[], None] | None:
        """When this run catches up on a missed window and has ``progress`` to tell: says so, and returns
        what to call after each chunk is written; else None."""
        since = min(self.start, self.start_now)
        if self.progress is None or self.now - since <= CATCH_UP or not ranges:
            return None
        progress = self.progress
        progress(f"plan: catching up {format_duration(self.now - since)} missed since {since:%Y-%m-%d %H:%M} UTC: "
                 f"{len(ranges)} chunks of customers with anything due, each committed on its own")
        done = [0]

        def tell() -> None:
            # Each chunk is committed by now: a crash from here on keeps it, and the next run, starting from
            # the same cursor, writes only what the chunks after it would have.
            done[0] += 1
            progress(f"plan: caught up {done[0]}/{len(ranges)} chunks: {self.result.touches_written} touches, "
                     f"{self.result.tasks_written} tasks written")

        return tell


# --- entry points --------------------------------------------------------------------------------


def _set_cursor(session: Session, end: datetime, now: datetime) -> None:
    row = session.get(KeyValue, CURSOR_KEY)
    previous = read_cursor(session)
    if previous is not None:
        # Never move either back (a re-plan of an old window, a run that does not plan ahead).
        end, now = max(end, previous[0]), max(now, previous[1])
        if (end, now) == previous:
            return
    value = {"end": end.isoformat(), "now": now.isoformat()}
    if row is None:
        session.add(KeyValue(key=CURSOR_KEY, value=value, updated_at=utcnow()))
    else:
        row.value = value
        row.updated_at = utcnow()
    session.commit()


def plan(
    at: datetime,
    start: datetime | None = None,
    *,
    ahead: datetime | None = None,
    dry_run: bool = False,
    url: str | None = None,
    directory: Any = None,
    delivery: DeliveryConfig | None = None,
    customer_ids: Sequence[int] | None = None,
    sink: Sink | None = None,
    chunk: int = CHUNK,
    workers: int | None = None,
    chunk_runner: ChunkRunner | None = None,
    progress: Progress | None = None,
) -> PlanResult:
    """Plan every touch and task due up to ``at``, and up to ``ahead`` (when later) what no later
    event can change (``engine.planning.lookahead``).

    ``start`` defaults to where the last written run left off (KeyValue ``plan:last_end``: its
    ``now`` for entries judged at their moment, its end for the others), on the first run ``at``
    minus one day. Writes touches, tasks, enrollments and attribute updates unless ``dry_run``;
    a dry run writes nothing at all (not even the published journey versions), and plans what a
    written run with the same arguments would write.

    ``workers``: processes planning a whole book (``engine.planning.plan_workers``); by default one
    per core (up to four) for a large book, one for a small one or a run with a ``sink``.
    ``chunk_runner``: plans the book's chunks elsewhere instead (the Prefect workers of a scaled-out
    deployment, ``engine.runtime.plan_slices``); the cursor moves only once all of them are written.
    ``progress``: told, when the run catches up on more than ``CATCH_UP`` missed (the service was down),
    how far it has got after each chunk it plans in this process.
    """
    from engine.language.journey_edits import settle, take_back_edits
    from engine.language.journey_registry import load_in_force
    from engine.language.settings_review import delivery_settings
    from store.db import get_engine

    now = as_utc(at)
    end = max(now, as_utc(ahead)) if ahead is not None else now
    # The approved delivery settings (a changed config/delivery.yaml waits for review), read once per run.
    config = delivery or delivery_settings(get_engine(url), write=not dry_run)
    with Session(get_engine(url), expire_on_commit=False) as session:
        in_force = load_in_force(session, directory)
        if dry_run:
            session.rollback()
        else:
            session.commit()
        if start is None:
            cursor = read_cursor(session)
            start_end, start_now = cursor if cursor is not None else (now - timedelta(days=1),) * 2
        else:
            start_end = start_now = as_utc(start)
        journeys = active_journeys(session, in_force.journeys.values())
        entries_again: dict[str, datetime] = {}
        if not dry_run:
            # What an edit governs is decided again below, under the version in force, entries included
            # (committed first: the planning processes read the store).
            entries_again = take_back_edits(session, in_force.journeys.values(), start_now)
            session.commit()
        # A retier since the last run took back entries judged ahead under the old tiers (``tier_moves``).
        retiered = tier_moves.marks(session)
        # Rows added since the last run, whose customers' entries judged ahead were never judged (``late_arrivals``).
        newest, seen = late_arrivals.newest(session), late_arrivals.seen(session)
        planner = Planner(session, journeys, config, start_end, end, now=now, start_now=start_now,
                          dry_run=dry_run, customer_ids=customer_ids, sink=sink, chunk=chunk, workers=workers,
                          entries_again=tier_moves.entries_again(in_force.journeys, retiered, entries_again))
        planner.chunk_runner = chunk_runner
        planner.progress = progress
        result = planner.run()
        if customer_ids is None and start_now < start_end:
            arrived = late_arrivals.arrivals(session, seen, newest)
            # Their entries judged again from where the last run stood, as for a retier's mark.
            again = tier_moves.entries_again(in_force.journeys, {"arrivals": start_now}, entries_again)
            for first in range(0, len(arrived), chunk):
                late = Planner(session, journeys, config, start_end, end, now=now, start_now=start_now,
                               dry_run=dry_run, customer_ids=arrived[first:first + chunk], sink=sink, chunk=chunk,
                               entries_again=again)
                result.merge(late.run())
        if not dry_run:
            _cap_again(session, list(in_force.journeys), journeys, config, now, result)
        result.problems = [str(p) for p in in_force.problems]
        if dry_run:
            session.rollback()
        elif customer_ids is None:
            # Only a run of the whole book has judged every customer's entries again.
            if entries_again:
                settle(session, in_force.journeys.values(), entries_again, now)
                session.commit()
            if retiered:
                tier_moves.forget(session, retiered)
                session.commit()
            late_arrivals.remember(session, newest)
            session.commit()
            _set_cursor(session, end, now)
        return result


def _cap_again(session: Session, in_force: Any, running: Sequence[Any], config: DeliveryConfig, now: datetime,
               result: PlanResult) -> None:
    """The cap's contest run again for the customers a stopped journey's planned touches held places of
    (``engine.planning.cap_again``), written guarded as a chunk's changes; a touch dispatch took meanwhile
    leaves it to the next run."""
    from contextlib import nullcontext

    from engine.planning.cap_again import cap_again
    from engine.planning.plan_writer import StaleTouches, write_chunk

    out = cap_again(session, in_force, {lj.id: lj.journey.priority for lj in running}, config, now)
    if not out.changes:
        return
    try:
        write_chunk(session, out, result, nullcontext())
    except StaleTouches:
        session.rollback()
        return
    result.add(out)


def plan_ahead(now: datetime, **kwargs: Any) -> PlanResult:
    """What ``journeys run`` does at each tick: plan up to ``now``, and ahead through the end of
    every customer's next local day, so that a day's touches are in the store (and its cap and
    priority judged) before the first of them goes out. ``kwargs`` as for ``plan``."""
    from store.db import get_engine

    with Session(get_engine(kwargs.get("url"))) as session:
        zones = book_zones(session)
    return plan(now, ahead=through_next_local_day(as_utc(now), zones), **kwargs)


def local_iso(moment: datetime, tz: str) -> str:
    """ISO 8601 with the customer's local UTC offset."""
    return as_utc(moment).astimezone(zone(tz)).isoformat()


def decision_json(d: Decision, tz: str, customer: str) -> dict[str, Any]:
    """A planned touch as ``plan --json`` prints it; ``customer``: the customer's external id."""
    return {
        "customer": customer, "journey": d.wanted.journey_id, "step": d.wanted.step_id,
        "channel": d.channel, "template": d.wanted.template, "due_at": local_iso(d.due_at, tz),
        "key": d.wanted.key, "category": d.wanted.category, "urgent": d.wanted.urgent,
    }
