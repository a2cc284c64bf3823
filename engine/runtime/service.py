"""``journeys run``: the embedded service. APScheduler is the clock, Prefect's local engine runs the flows.

Jobs (each a local Prefect flow run, see ``engine.runtime.flows``):

| job | when |
|---|---|
| dispatch | every ``JOURNEYS_DISPATCH_EVERY`` seconds (5), at most ``JOURNEYS_DISPATCH_MAX_BATCHES`` batches a run |
| plan | every ``JOURNEYS_PLAN_EVERY`` seconds (300): up to now, and ahead through every customer's next local day |
| outcome-ingest | every ``JOURNEYS_INGEST_EVERY`` seconds (60) |
| churn-check | daily 06:00 |
| retier, tier-review | weekly, Monday 03:00 / 04:00 |
| nps-survey | monthly, the 1st at 10:00 |

(cron times in ``JOURNEYS_SCHEDULE_TZ``, default Asia/Shanghai.) Each plan run plans ahead what no
later event can change (``engine.planning.planner.plan_ahead``), so a day's marketing touches are
stored, and their cap and priority judged, before its first one is sent.

The job store is a table (``apscheduler_jobs``) in the product's own database, so a
restart carries on: jobs already stored keep their next run time, and a run missed
while the service was down runs once on start (``coalesce``, and no limit on how late: a
grace time of an hour skipped the daily churn check and the weekly retier and tier review
altogether after a longer outage) instead of being skipped or repeated. Each job has
``max_instances=1``: a slow dispatch run is never overlapped by the next.

SIGTERM/SIGINT: no new runs start, the runs in progress finish (a dispatch run records
every batch it claimed), then the process exits 0. A dispatch run is bounded in
batches so that this wait is short; whatever is still due is picked up after restart.
SIGUSR1 writes every thread's stack to stderr, for a service that seems stuck.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from store.db import database_url, get_engine

log = logging.getLogger(__name__)

# The worker id the service's dispatch job holds while it runs (default host:pid).
WORKER_ENV = "JOURNEYS_WORKER_ID"


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


# Module-level job functions: the job store keeps a reference ("engine.runtime.service:job_dispatch"),
# not a pickled closure, so a restarted process finds them again.


# When the service last said its worker id is held elsewhere (monotonic seconds), and how often it says it again.
_held_said: list[float] = []
HELD_SAID_EVERY = 300.0


def job_dispatch() -> dict[str, Any]:
    import asyncio
    import time

    from engine.runtime.flows import dispatch_flow
    from engine.sending.worker_lease import held_elsewhere
    from store.clock import utcnow

    worker = os.environ.get(WORKER_ENV) or None
    if worker is not None and (held := held_elsewhere(get_engine(), worker, utcnow())) is not None:
        # Taken by another live dispatcher after the service started (`journeys run` refuses one held at
        # start): this run sends nothing, as the flow would refuse, without a flow run failing with a
        # traceback every few seconds. Said once, then every five minutes while it lasts.
        now = time.monotonic()
        if not _held_said or now - _held_said[0] >= HELD_SAID_EVERY:
            log.error("dispatch skipped: %s", held.line(f"{WORKER_ENV} {worker!r}"))
            _held_said[:] = [now]
        return {"skipped": "worker id held by another dispatcher"}
    _held_said.clear()
    result: dict[str, Any] = asyncio.run(
        dispatch_flow(
            batch_size=_env_int("JOURNEYS_DISPATCH_BATCH", 1000),
            worker_id=worker,
            max_batches=_env_int("JOURNEYS_DISPATCH_MAX_BATCHES", 20),
        )
    )
    return result


def job_flow(name: str) -> dict[str, Any]:
    """Run one flow of ``engine.runtime.flows.ALL_FLOWS`` by name.

    One function for every scheduled flow: the job store keeps this function's import path and
    the flow's name, so a job stored by one release still resolves in the next.
    """
    from engine.runtime.flows import ALL_FLOWS

    run = cast(Callable[[], dict[str, Any]], ALL_FLOWS[name])
    return run()


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: Callable[..., Any]
    trigger: Any
    args: tuple[str, ...] = ()


def _flow_job(name: str, trigger: Any) -> JobSpec:
    return JobSpec(name, job_flow, trigger, (name,))


def job_specs() -> list[JobSpec]:
    tz = os.environ.get("JOURNEYS_SCHEDULE_TZ", "Asia/Shanghai")
    return [
        JobSpec("dispatch", job_dispatch, IntervalTrigger(seconds=_env_int("JOURNEYS_DISPATCH_EVERY", 5))),
        _flow_job("plan", IntervalTrigger(seconds=_env_int("JOURNEYS_PLAN_EVERY", 300))),
        _flow_job("outcome-ingest", IntervalTrigger(seconds=_env_int("JOURNEYS_INGEST_EVERY", 60))),
        _flow_job("churn-check", CronTrigger(hour=6, minute=0, timezone=tz)),
        _flow_job("retier", CronTrigger(day_of_week="mon", hour=3, minute=0, timezone=tz)),
        _flow_job("tier-review", CronTrigger(day_of_week="mon", hour=4, minute=0, timezone=tz)),
        _flow_job("nps-survey", CronTrigger(day=1, hour=10, minute=0, timezone=tz)),
    ]


def build_scheduler(url: str | None = None) -> BackgroundScheduler:
    url = url or database_url()
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=get_engine(url))},
        # Dispatch, planning and the rest may run side by side; each job alone never twice at once.
        executors={"default": ThreadPoolExecutor(4)},
        # However late (None): a run missed during an outage of any length runs once when the service is back.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone="UTC",
    )


def ensure_jobs(scheduler: BackgroundScheduler) -> list[str]:
    """Add the jobs the store does not hold yet; stored ones keep their next run time. Returns the added ids."""
    added = []
    for spec in job_specs():
        job = scheduler.get_job(spec.id)
        if job is None:
            scheduler.add_job(spec.func, spec.trigger, args=spec.args, id=spec.id, name=spec.id)
            added.append(spec.id)
        elif job.misfire_grace_time is not None:
            # Stored by a release that gave up on runs missed by over an hour: from now on however late.
            scheduler.modify_job(spec.id, misfire_grace_time=None)
    return added


def run_service(stop: threading.Event | None = None, url: str | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``); returns the exit code."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        # A service that does not stop can say where each of its threads is (`kill -USR1 <pid>`),
        # written to stderr by the interpreter even when every Python thread is stuck.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        return _run_scheduled(stop, url)
    finally:
        from engine.runtime.local_engine import stop_local_engine

        stop_local_engine()


def _run_scheduled(stop: threading.Event, url: str | None) -> int:
    from engine.runtime.local_engine import (
        LocalEngineError,
        StartCancelled,
        start_local_engine,
        startup_timeout,
        uses_local_engine,
    )

    # Prefect's local engine before the first job: started once, with time to spare and a retry,
    # rather than by whichever job runs first, under Prefect's 20 s default and without a retry.
    if uses_local_engine():
        print(f"journeys service: starting Prefect's local engine (up to {startup_timeout():.0f} s)", flush=True)
    try:
        start_local_engine(cancel=stop)
    except StartCancelled:
        print("journeys service stopped cleanly (before it started)", flush=True)
        return 0
    except LocalEngineError as exc:
        print(f"journeys service cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    scheduler = build_scheduler(url)
    # Paused while the jobs are reconciled with the store, so nothing fires half-configured.
    scheduler.start(paused=True)
    added = ensure_jobs(scheduler)
    scheduler.resume()
    jobs = ", ".join(f"{j.id}@{j.next_run_time:%Y-%m-%d %H:%M:%S}" for j in scheduler.get_jobs())
    print(f"journeys service running (added {added or 'none'}; jobs: {jobs})", flush=True)
    stop.wait()
    print("journeys service stopping: waiting for running flows to finish", flush=True)
    scheduler.shutdown(wait=True)
    print("journeys service stopped cleanly", flush=True)
    return 0
