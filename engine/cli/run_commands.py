"""Commands that run the product: ``dispatch``, ``run`` (embedded service), ``demo``, ``deploy``."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from engine.cli.arguments import MAX_SEED, day_option, days_in_years, output_folder, whole_option
from engine.cli.output import fail, refuse_missing_folders, warn_if_no_secret

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger(__name__)


def _install_stop(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT set ``stop``: the batches in flight finish and are recorded, nothing is cut off."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


# A batch is claimed in one statement and held in memory while it renders and sends: ten times the
# default is plenty, 10**20 was taken and failed deep in the claim.
MAX_BATCH = 10_000
# Each lane holds a batch and a database connection.
MAX_LANES = 16
# The demo runs a month for its book in minutes; a book of millions is `journeys seed`'s, not the demo's.
MAX_DEMO_CUSTOMERS = 100_000
SENDING_WITHOUT_SECRET = ("messages whose template uses unsubscribe_url fail to render and are not sent, and "  # nosec B105 # a sentence, not a password
                          "links customers open are answered as invalid")


def dispatch(
    once: bool = typer.Option(False, "--once", help="Send what is due now, then exit."),
    batch: int = whole_option(1000, "--batch", low=1, high=MAX_BATCH, help="Touches claimed per batch"),
    worker: str | None = typer.Option(
        None, "--worker", help="Worker id (default host:pid), held by one live process at a time: a second "
        "one given it is refused. A stable id lets a restart take over its own interrupted sends at once."),
    lanes: int = whole_option(2, "--lanes", low=1, high=MAX_LANES, help="Batches in flight at once in this process"),
) -> None:
    """Claim due touches in batches and send them through the configured channels."""
    import asyncio

    from engine.sending.dispatch import make_dispatcher
    from engine.sending.reconcile import reconcile
    from engine.sending.worker_lease import WorkerIdHeld, worker_id_fault
    from store.db import get_engine

    refuse_missing_folders()  # the templates it renders and the delivery rules it keeps
    fault = worker_id_fault(worker) if worker is not None else None
    if fault is not None:
        raise fail(f"--worker {worker!r} {fault}")

    async def main() -> dict[str, Any]:
        engine = get_engine()
        dispatcher = make_dispatcher(engine, worker_id=worker, batch_size=batch, lanes=lanes)
        if not dispatcher.adapters:
            raise fail("no channel is configured: set the variables of at least one (channels/registry.py)")
        try:
            await dispatcher.start()
        except WorkerIdHeld as held:
            await dispatcher.aclose()
            # 1, not 2: the id is a good one, held by a live process now; the same command runs once that one
            # has stopped.
            named = f"--worker {worker!r}" if worker is not None else f"worker id {dispatcher.worker_id!r} (host:pid)"
            raise fail(held.line(named), 1) from None
        warn_if_no_secret(SENDING_WITHOUT_SECRET)  # once it can send: a command that fails says only why
        stop = asyncio.Event()
        _install_stop(stop)
        try:
            # Under the id this process now holds: what the processes that held it before left in flight.
            settled = await reconcile(engine, dispatcher.adapters, worker_id=dispatcher.worker_id)
            if once:
                counts = await dispatcher.run_until_idle(stop=stop)
            else:
                counts = await dispatcher.run_forever(stop)
        finally:
            await dispatcher.aclose()
        if dispatcher.lease.lost.is_set():
            typer.echo(json.dumps(counts.as_dict(), ensure_ascii=False))
            raise fail(f"worker id {dispatcher.worker_id!r} was taken over by another process while this one was "
                       f"not seen for {dispatcher.lease.lease}: stopped, sending nothing more under it", 1)
        return {"worker": dispatcher.worker_id, "reconciled": settled.as_dict(), **counts.as_dict()}

    result = asyncio.run(main())
    typer.echo(json.dumps(result, ensure_ascii=False))


def run() -> None:
    """Run the embedded service: APScheduler drives plan, dispatch, outcome ingest and the periodic
    flows on Prefect's local engine, with its job store in the product database. Stops cleanly on SIGTERM."""
    import os

    from engine.runtime.service import WORKER_ENV, run_service
    from engine.sending.worker_lease import held_elsewhere, worker_id_fault
    from store import migrate
    from store.clock import utcnow
    from store.db import get_engine

    # Before Prefect's engine starts (minutes, and lines of its own): a database that cannot serve is one line,
    # as is a folder setting that names no folder (every plan run and send would fail on it).
    refuse_missing_folders()
    if migrate.current_revision() is None:
        raise fail("the database has no schema yet: run `journeys db upgrade` first")
    # So is a worker id the service's dispatch could never hold (as `journeys dispatch --worker` says it):
    # otherwise every dispatch job, every few seconds, failed with the refusal's traceback.
    worker = os.environ.get(WORKER_ENV) or None
    if worker is not None:
        if (fault := worker_id_fault(worker)) is not None:
            raise fail(f"{WORKER_ENV} {worker!r} {fault}")
        if (held := held_elsewhere(get_engine(), worker, utcnow())) is not None:
            raise fail(held.line(f"{WORKER_ENV} {worker!r}"), 1)
    warn_if_no_secret(SENDING_WITHOUT_SECRET)
    raise typer.Exit(run_service())


def demo(
    customers: int = whole_option(3000, "--customers", low=1, high=MAX_DEMO_CUSTOMERS, help="Customers to seed"),
    days: int = whole_option(30, "--days", low=1, high=366, help="Days to simulate"),
    seed: int = whole_option(0, "--seed", low=0, high=MAX_SEED, help="Seed of the book and of everything simulated"),
    start: date | None = day_option(None, "--start", help="First simulated day (default: the 1st of last month)."),
    out: Path = typer.Option(Path("var") / "demo", "--out", help="Where the database, log, charts and summary go."),
) -> None:
    """A simulated month end to end on the embedded default: seed, plan, dispatch to local provider
    stand-ins, receipts, replies, agents, churn check, tier review; prints the per-tier summary."""
    from engine.demo.month import DemoError, DemoSettings, run_demo

    if start is not None:
        days_in_years(start, days, ("--start", start.isoformat(), "--days", str(days)))
    output_folder(out, "--out")
    try:
        run_demo(DemoSettings(customers=customers, days=days, seed=seed, start=start, out_dir=out))
    except DemoError as exc:
        typer.echo(f"demo: {exc}", err=True)
        raise typer.Exit(1) from None


def deploy(
    pool: str = typer.Option("journeys", "--pool", help="Prefect process work pool (created if missing)."),
    no_schedules: bool = typer.Option(False, "--no-schedules", help="Deploy without cron schedules."),
) -> None:
    """Scaled out: register the flows as deployments with cron schedules on a Prefect server
    (PREFECT_API_URL); start workers with `prefect worker start --pool <pool> --type process`."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    from engine.runtime.deployments import deploy_all

    api = PREFECT_API_URL.value()
    # Without a server Prefect would start a temporary one, deploy there and stop it: nothing is left deployed.
    if not api:
        raise fail("PREFECT_API_URL is not set: deploy registers the flows on a Prefect server; set it to the "
                   "server's API, e.g. http://PREFECTHOST:4200/api")
    try:
        names = deploy_all(pool, schedules=not no_schedules)
    except httpx.TransportError as exc:
        raise fail(f"PREFECT_API_URL {api}: cannot reach the Prefect server ({exc or type(exc).__name__})") from None
    for name in names:
        typer.echo(name)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("deploy")(deploy)
    app.command("dispatch")(dispatch)
    app.command("run")(run)
