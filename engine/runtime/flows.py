"""Prefect flows: plan, dispatch, outcome ingest, retier, tier review, churn check, NPS survey.

Tasks work on batches, never on single messages: a Prefect task run costs about 10 ms
of orchestration (NOTES.md), so one task per message would cap sending near 100/s.
``dispatch_flow`` runs one task per claimed batch (``batch_size`` touches, 500–2000)
with ``lanes`` batches in flight, and each flow run logs and returns its counts:
planned / sent / deferred / fell back / cancelled / failed by class.

The same flows run in both modes: embedded (``engine.runtime.service`` calls them in-process,
Prefect's ephemeral local API) and scaled out (``engine.runtime.deployments`` serves them from
a Prefect server to workers on a process pool). Parts written by other areas (planner,
events, console) are imported when a flow runs, so a missing optional part costs that
flow only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prefect import Flow, Task, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from engine.sending.dispatch import DEFAULT_BATCH, DispatchCounts, make_dispatcher
from engine.sending.reconcile import reconcile
from store.clock import as_utc, utcnow
from store.db import get_engine
from store.masking import install_masking_everywhere

# A Prefect worker runs a flow in a process of its own, loading this file by path: no `journeys`
# command installed the masking there, and the run's log goes to the Prefect server as written.
install_masking_everywhere()


def _now(now: datetime | str | None) -> datetime:
    if now is None:
        return utcnow()
    if isinstance(now, str):
        return as_utc(datetime.fromisoformat(now))
    return as_utc(now)


def _logged(label: str, run: Callable[[datetime], dict[str, Any]], now: str | None) -> dict[str, Any]:
    """Run a flow's one batch task and log its counts: every flow run says what it did."""
    result = run(_now(now))
    get_run_logger().info("%s: %s", label, result)
    return result


def _as_dict(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if isinstance(result, dict):
        return result
    if hasattr(result, "as_dict"):
        return dict(result.as_dict())
    if hasattr(result, "__dict__"):
        return {k: v for k, v in vars(result).items() if isinstance(v, int | float | str | bool)}
    return {"result": result}


# ---- dispatch ---------------------------------------------------------------------------


@task(name="dispatch-batch", cache_policy=NO_CACHE, retries=0)
async def dispatch_batch(dispatcher: Any, now: datetime | None = None) -> dict[str, Any] | None:
    """Claim, render, send and record one batch; None when nothing is due."""
    counts = await dispatcher.run_batch(now)
    return counts.as_dict() if counts is not None else None


@task(name="reconcile-interrupted", cache_policy=NO_CACHE)
async def reconcile_task(dispatcher: Any, now: datetime | None = None) -> dict[str, Any]:
    """What the processes that held the dispatcher's worker id before it left in flight, and unanswered sends."""
    counts = await reconcile(dispatcher.engine, dispatcher.adapters, worker_id=dispatcher.worker_id, now=now,
                             max_attempts=dispatcher.max_attempts)
    return counts.as_dict()


@flow(name="dispatch", log_prints=False)
async def dispatch_flow(
    batch_size: int = DEFAULT_BATCH,
    lanes: int = 2,
    worker_id: str | None = None,
    max_batches: int | None = None,
    now: str | None = None,
    outbox_dir: str | None = None,
) -> dict[str, Any]:
    """Send everything due (or ``max_batches`` batches): one task per batch, ``lanes`` at a time."""
    logger = get_run_logger()
    moment = _now(now) if now else None
    from engine.sending.dispatch import build_adapters

    dispatcher = make_dispatcher(
        get_engine(), build_adapters(outbox_dir), worker_id=worker_id, batch_size=batch_size, lanes=lanes
    )
    total = DispatchCounts()
    budget = [max_batches]

    async def lane() -> None:
        # Each lane takes its next batch as soon as its last one is recorded (as Dispatcher.run_until_idle
        # does), rather than all lanes waiting for the slowest batch of a wave.
        while budget[0] is None or budget[0] > 0:
            if budget[0] is not None:
                budget[0] -= 1
            done = await dispatch_batch(dispatcher, moment)
            if done is None:
                return
            total.merge(_counts(done))

    try:
        # The worker id is this flow run's alone while it dispatches (engine.sending.worker_lease): one held by
        # a live process fails the run with WorkerIdHeld before anything is settled or sent.
        await dispatcher.start()
        settled = await reconcile_task(dispatcher, moment)
        await asyncio.gather(*(lane() for _ in range(max(1, lanes))))
        push_receipts = await _push_receipts(dispatcher, moment)
    finally:
        await dispatcher.aclose()
    result = {"reconciled": settled, **total.as_dict(), **({"push_receipts": push_receipts} if push_receipts else {})}
    logger.info("dispatch: %s reconciled=%s", total.summary(), settled)
    return result


async def _push_receipts(dispatcher: Any, moment: datetime | None) -> dict[str, int]:
    """JPush calls nobody back: after sending, the receipts of sent pushes are looked up (issue 19)."""
    from channels.push_jpush import JPushAdapter
    from engine.loop.push_receipts import poll_push_receipts

    adapter = dispatcher.adapters.get("push")
    if not isinstance(adapter, JPushAdapter):
        return {}
    return dict(await poll_push_receipts(get_engine(), adapter, now=moment))


def _counts(d: dict[str, Any]) -> DispatchCounts:
    c = DispatchCounts(claimed=d["claimed"], sent=d["sent"], deferred=d["deferred"], fell_back=d["fell_back"],
                       cancelled=d["cancelled"], unanswered=d.get("unanswered", 0), batches=d["batches"],
                       dropped=d.get("dropped", 0), held=d.get("held", 0))
    c.failed.update(d["failed"])
    return c


# ---- planning and the loop's other parts --------------------------------------------------


def _scheduled(
    name: str, work: Callable[[datetime], Any], doc: str | None = None
) -> tuple[Task[[datetime], dict[str, Any]], Flow[..., dict[str, Any]]]:
    """The task and flow of one scheduled job: the flow runs ``work`` as its one task and logs the counts.

    Both functions take the names the module binds them to (``<name>_task``, ``<name>_flow``):
    Prefect records them, and deployments load the flow by that name.
    """
    function = name.replace("-", "_")

    def run_task(now: datetime) -> dict[str, Any]:
        return _as_dict(work(now))

    def run_flow(now: str | None = None) -> dict[str, Any]:
        return _logged(name.replace("-", " "), job, now)

    run_task.__name__ = run_task.__qualname__ = f"{function}_task"
    run_task.__doc__ = work.__doc__
    run_flow.__name__ = run_flow.__qualname__ = f"{function}_flow"
    run_flow.__doc__ = doc
    job = task(name=name, cache_policy=NO_CACHE)(run_task)
    return job, flow(name=name)(run_flow)


def _run_log() -> Any:
    """The flow run's log; the module's own when called outside a run (a test or a tool calling the task's function)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _plan(now: datetime, slice_ids: int | None = None, chunk: int | None = None) -> Any:
    """Plan up to ``now`` and ahead through the end of every customer's next local day: a day's
    touches are in the store (the cap and priority judged over the whole day) before its first
    goes out. What no later event can change only (``engine.planning.lookahead``). With
    ``slice_ids``, the chunks are planned by the pool's workers in slices of that many customer
    ids (``engine.runtime.plan_slices``)."""
    from engine.planning.planner import plan_ahead

    # A run catching up after the service was down logs how far it has got, chunk by chunk, in the flow run's log.
    sizes: dict[str, Any] = {"progress": _run_log().info}
    if chunk:
        sizes["chunk"] = chunk
    if slice_ids is None:
        return plan_ahead(now, **sizes)
    from engine.runtime.plan_slices import SliceRunner

    return plan_ahead(now, chunk_runner=SliceRunner(slice_ids), **sizes)


def _count_outcomes(now: datetime) -> dict[str, Any]:
    """Receipts are recorded by the webhooks as they arrive, and the events they raise (replies,
    survey answers, opt-outs) are acted on by the next plan run; this applies the receipts that
    came before dispatch recorded their message (``engine.loop.receipts.settle_parked_receipts``)
    and counts what has come back."""
    from engine.loop.receipts import settle_parked_receipts

    result: dict[str, Any] = {"parked_receipts": settle_parked_receipts(now=now)}
    with get_engine().connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(text("SELECT kind, count(*) FROM outcome GROUP BY kind")).all()
    result["outcomes_by_kind"] = {str(k): int(n) for k, n in rows}
    return result


def _retier(now: datetime) -> Any:
    from engine.loop.retier import retier

    return retier(at=now)


def _tier_review(now: datetime) -> Any:
    from engine.loop.monitoring import run_tier_review

    return run_tier_review(at=now)


def _churn_check(now: datetime) -> Any:
    from engine.loop.monitoring import churn_warning_check

    return churn_warning_check(at=now)


@task(name="plan", cache_policy=NO_CACHE)
def plan_task(now: datetime, slice_ids: int | None = None, chunk: int | None = None) -> dict[str, Any]:
    result = _plan(now, slice_ids, chunk)
    counts = _as_dict(result)
    failed = getattr(result, "failed_customers", None)
    if failed:
        # The run planned everyone else; these customers wait for their rows to be mended, and the
        # flow run's log says so every tick until they are.
        counts["failed_customers"] = len(failed)
        for reason in sorted(failed):
            get_run_logger().error("plan: %s (left out of this run)", reason)
    return counts


@flow(name="plan")
def plan_flow(now: str | None = None, slice_ids: int | None = None, chunk: int | None = None) -> dict[str, Any]:
    """Evaluate the journeys in force and write the touches and tasks due up to now, and ahead
    through every customer's next local day what no later event can change. Scaled out, the
    ``plan`` deployment passes ``slice_ids``: the chunks (``chunk`` customer ids each, the
    planner's own size by default) with anything due go to the pool's workers as ``plan-slice``
    flow runs of about ``slice_ids`` ids each (``engine.runtime.plan_slices``)."""
    return _logged("plan", lambda moment: plan_task(moment, slice_ids, chunk), now)

outcome_ingest_task, outcome_ingest_flow = _scheduled("outcome-ingest", _count_outcomes)
retier_task, retier_flow = _scheduled(
    "retier", _retier, "Weekly: score every customer and apply tier changes (kept in the tier history)."
)
tier_review_task, tier_review_flow = _scheduled(
    "tier-review", _tier_review,
    "Weekly: churn per tier over the review window; a tier over the threshold gets its extra resources.",
)
churn_check_task, churn_check_flow = _scheduled(
    "churn-check", _churn_check, "Daily: activity change detection; at-risk customers get a churn-warning event."
)
# The survey itself is a journey (journeys/monthly-nps-survey.yaml, on the 1st at 10:00 local
# time); planning at this moment makes sure it is planned on its day even between plan runs.
nps_survey_task, nps_survey_flow = _scheduled(
    "nps-survey", _plan, "Monthly: the NPS survey touch for every customer it applies to."
)


ALL_FLOWS = {
    "plan": plan_flow,
    "dispatch": dispatch_flow,
    "outcome-ingest": outcome_ingest_flow,
    "retier": retier_flow,
    "tier-review": tier_review_flow,
    "churn-check": churn_check_flow,
    "nps-survey": nps_survey_flow,
}
