"""The planner: every touch and agent task due in (start, end], written idempotently.

Shape of a run (``plan``):
- Journeys in force come from ``engine.language.journey_registry`` (the last good version of a broken
  file stays in force). A journey with ``enabled: false`` runs only when the KeyValue
  ``journey_enabled:<id>`` says ``{"enabled": true}`` (dynamic adjustment sets it).
- The book is walked in chunks of customer ids. Per chunk, SQL narrows the entrants of
  each journey in bulk (tier, time zone with a firing in the window, ``birth_md`` codes,
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

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as _sa_select
from sqlmodel import Session

from engine.language.settings_model import DeliveryConfig
from engine.planning.chunk_planner import CHUNK, ChunkPlanner
from engine.planning.delivery_rules import Decision
from engine.planning.journeys_in_force import active_journeys, conditions_of, switched_on
from engine.planning.plan_output import ChunkOutput, PlanResult, Sink
from engine.planning.plan_workers import chunk_ranges, plan_in_processes, reachable_from_workers, workers_for
from store.clock import as_utc, utcnow, zone
from store.models import Customer, KeyValue

# What callers take from the planner. The run's types and the journey helpers live in lower
# modules, so that the chunk planner and the worker processes need not import this one.
__all__ = [
    "CHUNK", "ChunkOutput", "ChunkPlanner", "PlanResult", "Planner", "Sink", "active_journeys", "conditions_of",
    "decision_json", "local_iso", "plan", "switched_on",
]

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed
# select() overloads reject; the queries here select plain columns, so use it untyped.
select: Any = _sa_select

CURSOR_KEY = "plan:last_end"


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


class Planner(ChunkPlanner):
    """A whole run: the given customers in one chunk, or the book in chunks of customer ids,
    in this process or on worker processes (``engine.planning.plan_workers``)."""

    def run(self) -> PlanResult:
        with _cyclic_gc_between_chunks():
            if self.customer_ids is not None:
                if self.customer_ids:
                    self.plan_chunk(self.customer_ids[0], self.customer_ids[-1], self.customer_ids)
                return self.result
            lo, hi = self.session.execute(select(func.min(Customer.id), func.max(Customer.id))).one()
            if lo is None:
                return self.result
            self.candidates.timezones = [
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
                self.plan_chunk(first, last, None)
                # The chunk's objects are gone by now (freed by reference counting); a young
                # generation pass clears whatever cycles it left while little is alive.
                gc.collect(1)
            return self.result


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
