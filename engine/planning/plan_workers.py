"""A whole-book plan spread over worker processes, one chunk of customers at a time.

Why processes: a chunk's planning is Python work that holds the GIL, and so is the driver's
side of writing it (it takes the GIL back for every row it binds); threads in one process
take turns rather than share two cores. Worker processes each plan and write whole chunks;
while one writes (the database holds its lock) the other plans, and each uses a core of its
own. Measured on 1M customers, one day: 124 s in one process, 51 s on two workers.

What makes it safe: chunks are disjoint ranges of customer ids and nothing a chunk reads
depends on what another chunk writes (cap, enrollments, events and touches are all per
customer), so the outcome is the one a single process gives, in any order. A chunk is
planned and written again when a stored touch the cap decided on changed meanwhile
(``engine.planning.plan_writer.StaleTouches``), and only then reported. Each chunk
commits on its own, as in a single process; when a chunk fails, the chunks not yet started
are cancelled, the error is raised in the caller, and a re-run repairs the rest
(idempotency keys). On SQLite the writers take turns through a lock the workers share
(``busy_timeout`` still guards against any other writer); a worker converts a chunk's
rows before it takes the lock, so the lock is held only while SQLite works. The planner's
reads run outside a transaction (the driver begins one only for a write), so a writer
never has to upgrade a read snapshot that another process has moved past.

Workers are spawned, not forked: the caller may hold connections, threads (Prefect,
APScheduler) or locks that a fork would copy mid-use. A worker builds a chunk planner
(``engine.planning.chunk_planner``), the layer below the planner that starts the workers.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.language.settings_model import DeliveryConfig
from engine.language.validation import LoadedJourney
from engine.planning.chunk_planner import ChunkPlanner
from engine.planning.plan_output import PlanResult

if TYPE_CHECKING:
    from sqlmodel import Session

WORKERS_ENV = "JOURNEYS_PLAN_WORKERS"
MAX_WORKERS = 4
# Below this many customer ids the start of the worker processes (about a second of
# imports each) costs more than a second core gives back.
MIN_PARALLEL_IDS = 60_000


def workers_for(id_span: int, chunk: int, requested: int | None = None) -> int:
    """How many processes plan a book whose customer ids span ``id_span``.

    ``requested`` (or ``JOURNEYS_PLAN_WORKERS``) wins when given; by default one per core,
    at most ``MAX_WORKERS`` (SQLite takes one writer at a time; past a few, workers wait on
    each other's writes), and one for books too small to gain from more.
    """
    chunks = max(1, -(-id_span // max(1, chunk)))
    text = os.environ.get(WORKERS_ENV, "").strip()
    if requested is None and text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{WORKERS_ENV} must be a whole number of processes, 1 or more; it is {text!r}")
        requested = int(text)
    if requested is not None:
        return max(1, min(requested, chunks))
    if id_span < MIN_PARALLEL_IDS:
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS, chunks))


def reachable_from_workers(session: Session) -> bool:
    """Whether other processes can open the session's database: not a SQLite database in
    memory, which exists only in this process."""
    url = session.get_bind().engine.url
    return url.get_backend_name() != "sqlite" or (url.database or ":memory:") != ":memory:"


@dataclass(frozen=True)
class ChunkJob:
    """What a worker (a process here, or a Prefect worker elsewhere) needs to build the same
    chunk planner as the caller's."""

    url: str
    journeys: Sequence[LoadedJourney]
    config: DeliveryConfig
    start: datetime
    end: datetime
    now: datetime
    start_now: datetime
    dry_run: bool
    sources: frozenset[str]
    chunk: int
    timezones: Sequence[str]
    entries_again: dict[str, datetime] = field(default_factory=dict)


def job_of(planner: ChunkPlanner) -> ChunkJob:
    """The settings of ``planner`` that its chunks are planned under, wherever they run."""
    url = planner.session.get_bind().engine.url.render_as_string(hide_password=False)
    return ChunkJob(url, planner.journeys, planner.config, planner.start, planner.end, planner.now, planner.start_now,
                    planner.dry_run, planner.sources, planner.chunk, list(planner.candidates.zones()),
                    dict(planner.entries_again))


def chunk_planner_for(session: Session, job: ChunkJob) -> ChunkPlanner:
    """A chunk planner on ``session`` planning exactly as the one ``job`` was taken from."""
    planner = ChunkPlanner(session, job.journeys, job.config, job.start, job.end, now=job.now,
                           start_now=job.start_now, dry_run=job.dry_run, sources=job.sources, chunk=job.chunk,
                           entries_again=dict(job.entries_again))
    planner.candidates.timezones = list(job.timezones)
    return planner


_planner: ChunkPlanner | None = None


def _without_foreign_key_checks(dbapi_connection: Any, _record: Any) -> None:
    """A worker inserts rows only for customers it has just read, and customers are never
    deleted (erasure anonymises them in place), so SQLite's per-row look-up of the customer
    proves nothing here; it cost about 15% of SQLite's time per row. Runs after the store's
    own connect hook, which turns the checks on for every other connection."""
    dbapi_connection.execute("PRAGMA foreign_keys=OFF")


def _end_with_parent() -> None:
    """End this worker as soon as the process that started it is gone.

    A planning run killed outright (``kill -9``, the out-of-memory killer) cannot shut its pool down, and
    each worker holds both ends of the pool's queues, so it would wait for its next chunk forever: the
    workers outlived the run, holding memory and the database. A chunk cut off halfway was never
    committed (the next run plans it again), so the worker just exits."""
    import threading
    from multiprocessing.connection import wait as ready

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        ready([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def _start_worker(job: ChunkJob, write_lock: AbstractContextManager[Any] | None) -> None:
    global _planner
    _end_with_parent()
    from sqlalchemy import event
    from sqlmodel import Session

    from store.db import get_engine

    engine = get_engine(job.url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _without_foreign_key_checks)
    _planner = chunk_planner_for(Session(engine, expire_on_commit=False), job)
    if write_lock is not None:
        _planner.write_lock = write_lock
    # The process only plans chunks: collect between them rather than while one is alive
    # (see ``engine.planning.planner._cyclic_gc_between_chunks``).
    gc.disable()


def _plan_range(lo: int, hi: int) -> PlanResult:
    planner = _planner
    assert planner is not None, "worker not started"
    planner.result = PlanResult(planner.start, planner.end, planner.dry_run, journeys=[])
    planner.plan_chunk(lo, hi, None)  # plans, writes and commits the chunk
    gc.collect(1)
    return planner.result


def balanced(ranges: Sequence[tuple[int, int]], workers: int) -> list[tuple[int, int]]:
    """``ranges`` with the last ones, those left over when the chunks do not share out evenly
    among ``workers``, each cut into ``workers`` ranges: the last round then keeps every worker
    busy instead of one (5 chunks on 2 workers took 3 chunk-times, now 2.5). Chunks are
    independent (see above), so how the ids are cut changes nothing of the outcome."""
    left = len(ranges) % workers if workers > 1 else 0
    if not left:
        return list(ranges)
    out = list(ranges[: len(ranges) - left])
    for first, last in ranges[len(ranges) - left :]:
        size = -(-(last - first + 1) // workers)
        out.extend((lo, min(lo + size - 1, last)) for lo in range(first, last + 1, size))
    return out


def plan_in_processes(planner: ChunkPlanner, ranges: Sequence[tuple[int, int]], workers: int,
                      on_chunk: Callable[[], None] | None = None) -> None:
    """Plan the chunks ``ranges`` (first and last customer id each) on ``workers`` processes
    and add what each chunk did to ``planner.result``; ``on_chunk`` is called after each is added."""
    job = job_of(planner)
    # Submitted in order, and a pool takes them in that order: the cut-up chunks come last.
    ranges = balanced(ranges, workers)
    context = multiprocessing.get_context("spawn")
    # SQLite takes one writer at a time: the workers queue on a lock of their own, which wakes
    # the next one as soon as a write commits. PostgreSQL writes concurrently.
    write_lock = context.Lock() if planner.dialect == "sqlite" and not planner.dry_run else None
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(job, write_lock)) as pool:
        pending: set[Future[PlanResult]] = {pool.submit(_plan_range, first, last) for first, last in ranges}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    planner.result.merge(future.result())  # re-raises a chunk's error here
                    if on_chunk is not None:
                        on_chunk()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
