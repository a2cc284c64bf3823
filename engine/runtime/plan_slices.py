"""A plan run spread over the Prefect workers of a pool, on as many machines as it has.

The run itself (the ``plan`` deployment's flow) does what only one may do: it publishes the
journeys in force, reads the cursor, asks which chunks have anything due
(``engine.planning.due_chunks``), cuts those into slices of about ``SLICE_IDS`` customer ids and
starts one flow run of the ``plan-slice`` deployment per slice. Any worker of the pool picks a
slice up, plans its chunks one after another exactly as a single process would
(``engine.planning.plan_workers.chunk_planner_for``: the same journey versions, window, sources
and zones) and commits each chunk. The run waits for every slice, adds up their counts, and only
then moves the cursor.

Why a work pool of process workers rather than Dask (``prefect-dask``): the product already runs
scaled out on a Prefect server with a process work pool (dispatch and the scheduled flows), so
planning across machines needs no other service to run, secure and watch (a Dask scheduler and
its workers) and no new dependency (dask and distributed). A slice is a flow run, which Prefect
records, shows and lets an operator cancel; one that fails is visible and is run again. The price
is one process per flow run (a worker starts it: about 2-3 s of imports on these machines), which
a slice of 100,000+ customer ids (several seconds to a minute of planning) makes small; Dask's
long-lived processes would pay off only for pieces much smaller than the book needs.

Counts come back in the message of a slice's final state (a flow may return its final state;
the API keeps it), so no result storage shared between machines is needed.

Retried without duplicates: chunks are disjoint ranges of customers, and each commits on its own
with idempotency keys (``INSERT … ON CONFLICT DO NOTHING``, guarded updates), so planning a slice
again after a failure writes only what the failed attempt had not committed. A slice whose flow
run fails or crashes is started again, up to ``SLICE_ATTEMPTS`` times in all; if it still fails,
the run fails and leaves the cursor where it was, and the next run plans that window again.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Completed, State
from sqlalchemy import tuple_
from sqlmodel import Session, col, select

from engine.language.journey_review import stored_journey
from engine.language.settings_model import DeliveryConfig
from engine.planning.plan_output import PlanResult
from engine.planning.plan_workers import ChunkJob, chunk_planner_for, job_of
from engine.planning.planner import Planner
from engine.runtime.deployments import SLICE_IDS
from store.clock import as_utc
from store.db import get_engine
from store.masking import install_masking_everywhere
from store.models import JourneyVersion

# A Prefect worker runs a flow in a process of its own, loading this file by path: no `journeys`
# command installed the masking there, and the run's log goes to the Prefect server as written.
install_masking_everywhere()

SLICE_DEPLOYMENT = "plan-slice/plan-slice"
SLICE_ATTEMPTS = 3
FINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


class SliceFailed(RuntimeError):
    """A slice of the plan did not complete in ``SLICE_ATTEMPTS`` flow runs."""


# ---- the run's settings and counts as JSON (flow run parameters and state messages) -------------


def job_params(job: ChunkJob) -> dict[str, Any]:
    """What a slice's flow run needs to plan as the run would; journeys by id and version (the
    run published them in the store), the database from the worker's own settings."""
    return {
        "journeys": [[lj.id, lj.version] for lj in job.journeys],
        "config": job.config.model_dump(mode="json"),
        "start": job.start.isoformat(), "end": job.end.isoformat(), "now": job.now.isoformat(),
        "start_now": job.start_now.isoformat(), "dry_run": job.dry_run, "sources": sorted(job.sources),
        "chunk": job.chunk, "timezones": list(job.timezones),
        "entries_again": {j: at.isoformat() for j, at in job.entries_again.items()},
    }


def job_from_params(session: Session, params: dict[str, Any], url: str) -> ChunkJob:
    wanted = [(str(i), str(v)) for i, v in params["journeys"]]
    rows = session.exec(select(JourneyVersion).where(
        tuple_(col(JourneyVersion.journey_id), col(JourneyVersion.version)).in_(wanted))).all()
    loaded = {(lj.id, lj.version): lj for row in rows if (lj := stored_journey(row)) is not None}
    missing = [f"{i} {v[:8]}" for i, v in wanted if (i, v) not in loaded]
    if missing:
        raise LookupError(f"journey versions not in the store: {', '.join(missing)} (is this worker on the "
                          "run's database?)")
    moment = lambda key: as_utc(datetime.fromisoformat(params[key]))  # noqa: E731
    return ChunkJob(url, [loaded[k] for k in wanted], DeliveryConfig.model_validate(params["config"]),
                    moment("start"), moment("end"), moment("now"), moment("start_now"), bool(params["dry_run"]),
                    frozenset(params["sources"]), int(params["chunk"]), list(params["timezones"]),
                    {j: as_utc(datetime.fromisoformat(at)) for j, at in params.get("entries_again", {}).items()})


def result_json(result: PlanResult) -> str:
    """The counts of ``result`` (what ``PlanResult.merge`` adds up), as JSON."""
    out: dict[str, Any] = {}
    for f in fields(result):
        value = getattr(result, f.name)
        if isinstance(value, Counter):
            out[f.name] = [[list(k) if isinstance(k, tuple) else k, n] for k, n in value.items()]
        elif isinstance(value, int) and not isinstance(value, bool):
            out[f.name] = value
    return json.dumps(out)


def result_from_json(text: str, start: datetime, end: datetime, dry_run: bool) -> PlanResult:
    result = PlanResult(start, end, dry_run)
    for name, value in json.loads(text).items():
        mine = getattr(result, name, None)
        if isinstance(mine, Counter):
            mine.update({tuple(k) if isinstance(k, list) else k: n for k, n in value})
        elif isinstance(mine, int):
            setattr(result, name, value)
    return result


# ---- a slice: one flow run on a worker --------------------------------------------------------------


@flow(name="plan-slice")
def plan_slice_flow(job: dict[str, Any], ranges: list[list[int]]) -> State:
    """Plan the chunks ``ranges`` (first and last customer id each) of a plan run, committing each;
    the final state's message holds the counts."""
    engine = get_engine()
    with Session(engine, expire_on_commit=False) as session:
        chunk_job = job_from_params(session, job, engine.url.render_as_string(hide_password=False))
        planner = chunk_planner_for(session, chunk_job)
        enabled = gc.isenabled()
        gc.disable()  # collected between chunks instead (``engine.planning.planner``)
        try:
            for first, last in ranges:
                planner.plan_chunk(int(first), int(last), None)
                gc.collect(1)
        finally:
            if enabled:
                gc.enable()
    get_run_logger().info("plan slice %s..%s: %s touches, %s tasks", ranges[0][0], ranges[-1][1],
                          planner.result.planned, planner.result.tasks)
    return Completed(message=result_json(planner.result))


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The flow run's logger inside a flow (the plan deployment), the module's outside one."""
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


# ---- the run: start the slices, wait, add up ----------------------------------------------------------


def slices_of(ranges: Sequence[tuple[int, int]], slice_ids: int) -> list[list[list[int]]]:
    """Consecutive chunk ranges grouped into slices spanning at most ``slice_ids`` customer ids
    (at least one chunk each)."""
    slices: list[list[list[int]]] = []
    for first, last in ranges:
        if slices and last - slices[-1][0][0] + 1 <= slice_ids:
            slices[-1].append([first, last])
        else:
            slices.append([[first, last]])
    return slices


class SliceRunner:
    """A ``Planner.chunk_runner`` that plans the run's chunks as ``plan-slice`` flow runs."""

    def __init__(self, slice_ids: int = SLICE_IDS, deployment: str = SLICE_DEPLOYMENT, poll: float = 1.0,
                 attempts: int = SLICE_ATTEMPTS) -> None:
        self.slice_ids = slice_ids
        self.deployment = deployment
        self.poll = poll
        self.attempts = attempts

    def __call__(self, planner: Planner, ranges: list[tuple[int, int]]) -> None:
        from prefect import get_client
        from prefect.deployments import run_deployment

        params = job_params(job_of(planner))
        slices = slices_of(ranges, self.slice_ids)
        logger = _logger()

        def start(index: int) -> str:
            run = run_deployment(self.deployment, parameters={"job": params, "ranges": slices[index]},
                                 timeout=0, as_subflow=True)
            return str(run.id)  # type: ignore[union-attr]

        pending = {start(i): i for i in range(len(slices))}
        tries = dict.fromkeys(range(len(slices)), 1)
        logger.info("plan: %s chunks with anything due in %s slices on %s", len(ranges), len(slices),
                    self.deployment)
        with get_client(sync_client=True) as client:
            while pending:
                time.sleep(self.poll)
                for run_id, index in list(pending.items()):
                    state = client.read_flow_run(run_id).state  # type: ignore[arg-type]
                    if state is None or state.type.value not in FINAL:
                        continue
                    del pending[run_id]
                    if state.type.value == "COMPLETED":
                        planner.result.merge(result_from_json(state.message or "{}", planner.start, planner.end,
                                                              planner.dry_run))
                        continue
                    if tries[index] >= self.attempts:
                        raise SliceFailed(f"plan slice {slices[index][0][0]}..{slices[index][-1][1]} ended "
                                          f"{state.type.value} {tries[index]} times: {state.message}")
                    logger.warning("plan slice %s..%s ended %s (%s); starting it again", slices[index][0][0],
                                   slices[index][-1][1], state.type.value, state.message)
                    tries[index] += 1
                    pending[start(index)] = index
        planner.result.workers = len(slices)
