"""Scaled out: the same flows as Prefect deployments on a process work pool, run by several workers.

    export JOURNEYS_DATABASE_URL=postgresql://…            # every worker uses the same database
    prefect server start --host 0.0.0.0 --port 4200        # one Prefect server
    export PREFECT_API_URL=http://<server>:4200/api
    journeys deploy --pool journeys                        # creates the pool and the deployments
    prefect worker start --pool journeys --type process --limit 2   # on each worker machine

Planning is spread too: the ``plan`` deployment (every 5 minutes) cuts the chunks of the book
with anything due into slices of ``SLICE_IDS`` customer ids and starts a ``plan-slice`` flow run
for each, which any worker picks up (``engine.runtime.plan_slices``); it waits for them and moves
the cursor once all are written. The plan run holds a worker slot while it waits, so give each
worker ``--limit`` of at least 2 (one per core of its machine is a good start). docs/scale-out.md
has the measured figures and the sizing.

Dispatch runs as a deployment every minute on every worker's schedule slot; concurrent
runs never send a touch twice because claiming is ``FOR UPDATE SKIP LOCKED``
(``engine.sending.claiming``), and each run is bounded in batches so it ends well inside its
minute. Provider rate limits are shared by ``JOURNEYS_DISPATCH_WORKERS`` (see
``engine.sending.rate_limit``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from engine.language.paths import PROJECT_ROOT

# Customer ids per plan slice (engine.runtime.plan_slices): a slice costs a worker a new process
# (2-3 s of imports) before it plans anything, so it holds several chunks of 20,000. Defined here
# so that ``journeys deploy`` need not load the planner.
SLICE_IDS = 100_000


@dataclass(frozen=True)
class DeploymentSpec:
    flow: str  # function name in ``entrypoint``
    name: str
    cron: str | None
    parameters: dict[str, Any] = field(default_factory=dict)
    entrypoint: str = "engine/runtime/flows.py"


DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    # The plan run cuts the book into slices that any worker of the pool plans (plan-slice).
    DeploymentSpec("plan_flow", "plan", "*/5 * * * *", {"slice_ids": SLICE_IDS}),
    DeploymentSpec("plan_slice_flow", "plan-slice", None, entrypoint="engine/runtime/plan_slices.py"),
    DeploymentSpec("dispatch_flow", "dispatch", "* * * * *", {"max_batches": 40}),
    DeploymentSpec("outcome_ingest_flow", "outcome-ingest", "* * * * *"),
    DeploymentSpec("churn_check_flow", "churn-check", "0 6 * * *"),
    DeploymentSpec("retier_flow", "retier", "0 3 * * 1"),
    DeploymentSpec("tier_review_flow", "tier-review", "0 4 * * 1"),
    DeploymentSpec("nps_survey_flow", "nps-survey", "0 10 1 * *"),
)


async def ensure_pool(pool: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))


def deploy_all(pool: str, timezone: str = "Asia/Shanghai", schedules: bool = True) -> list[str]:
    """Create the pool if needed and (re)create every deployment; returns their ``flow/deployment`` names."""
    from prefect import flow as prefect_flow
    from prefect.schedules import Cron

    asyncio.run(ensure_pool(pool))
    names = []
    for spec in DEPLOYMENTS:
        # The workers run the code from the project folder (installed the same way on each machine).
        remote = prefect_flow.from_source(source=str(PROJECT_ROOT), entrypoint=f"{spec.entrypoint}:{spec.flow}")
        if asyncio.iscoroutine(remote):
            remote = asyncio.run(remote)
        schedule = [Cron(spec.cron, timezone=timezone)] if spec.cron and schedules else None
        # to_deployment + apply rather than Flow.deploy: deploy's closing "active workers?" check
        # sends limit=None, which the 3.8 server rejects (422).
        deployment = remote.to_deployment(
            name=spec.name, work_pool_name=pool, parameters=spec.parameters, schedules=schedule
        )
        if asyncio.iscoroutine(deployment):
            deployment = asyncio.run(deployment)
        applied = deployment.apply()
        if asyncio.iscoroutine(applied):
            asyncio.run(applied)
        names.append(f"{remote.name}/{spec.name}")
    return names
