"""Dispatch throughput through the whole path (claim, render, send, record) to the Twilio stand-in,
directly and as the Prefect dispatch flow (one task per batch), against one Prefect task per message
and against the fastest raw client loop (aiohttp) to the same stand-in in the same conditions.

    .venv/bin/python benchmarks/dispatch_bench.py [--n 20000] [--per-task-n 500] [--batch 1000] [--lanes 3]

The stand-in runs in its own process (bare aiohttp, no callbacks). The database is a fresh
SQLite file in a temporary folder. Rate limits are lifted for the run (a copy of config/ with
high limits for the flow): the point is what the pipeline can do; production pacing comes from
config/delivery.yaml. The raw loop runs before and after the others; the ratio is taken against
the faster of the two, and the load average is printed with the figures (the machine is shared).
Bars: whole path and flow >= 2,000/s, >= 0.5x raw (issue N: the flow is how production sends, the whole
path is the same work without Prefect), >= 20x one task per message.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Report, add_common

ACCOUNT = "AC" + "0" * 32
TOKEN = "standin-auth-token"
# Client-process CPU seconds of each timed phase (all threads; the flow's includes Prefect's
# in-process API): on a shared machine this moves far less with the load than the wall clock.
CPU_S: dict[str, float] = {}
# The share of the raw loop's rate the whole path and the flow must reach.
RAW_SHARE = 0.5
BODY = "【安心保险】您好，本周为您精选的专属关怀礼包已上线，登录APP即可领取。回复TD退订"


def _prepare(url: str, n: int, *, schema_only: bool = False) -> None:
    from sqlalchemy import text

    from store.db import make_engine
    from store.migrate import upgrade
    from tests.dispatch_support import daytime_zone, make_customers, make_touches

    upgrade(url)
    if schema_only:
        return
    engine = make_engine(url)
    # Dispatched at the wall clock: customers where it is day, so that quiet hours hold none of the sends.
    ids = make_customers(engine, n, timezone=daytime_zone())
    make_touches(engine, ids, channel="sms")
    with engine.begin() as conn:
        conn.execute(text("UPDATE touch SET template = 'silver_weekly_push', category = 'marketing'"))
    engine.dispose()


def _adapter(base: str) -> Any:
    from channels.sms_twilio import TwilioSmsAdapter

    return TwilioSmsAdapter(ACCOUNT, TOKEN, "+15005550006", api_base=base, concurrency=48)


async def whole_path(url: str, base: str, batch: int, lanes: int) -> tuple[int, float]:
    from engine.sending.dispatch import make_dispatcher
    from store.db import make_engine

    engine = make_engine(url)
    dispatcher = make_dispatcher(engine, {"sms": _adapter(base)}, worker_id="bench", batch_size=batch, lanes=lanes)
    dispatcher.limiter._buckets.clear()  # lift the configured rate for the measurement
    started, cpu = time.perf_counter(), time.process_time()
    counts = await dispatcher.run_until_idle()
    elapsed = time.perf_counter() - started
    CPU_S["whole"] = time.process_time() - cpu
    await dispatcher.aclose()
    engine.dispose()
    assert counts.failed == {} and counts.deferred == 0, counts.summary()
    return counts.sent, elapsed


def per_task(url: str, base: str) -> tuple[int, float]:
    """One Prefect task per message: claim one, render, send, record — the way not to do it."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from engine.sending.dispatch import make_dispatcher
    from store.db import make_engine

    engine = make_engine(url)
    start_prefect()

    @task(cache_policy=NO_CACHE)
    async def send_one(d: Any) -> int:
        counts = await d.run_batch()
        return counts.sent if counts else 0

    @flow
    async def one_task_per_message() -> tuple[int, float]:
        d = make_dispatcher(engine, {"sms": _adapter(base)}, worker_id="per-task", batch_size=1, lanes=1)
        d.limiter._buckets.clear()
        await send_one(d)  # warm: the first task run pays one-off costs
        started, cpu = time.perf_counter(), time.process_time()
        sent = 1
        while True:
            got = await send_one(d)
            if not got:
                break
            sent += got
        elapsed = time.perf_counter() - started
        CPU_S["per_task"] = time.process_time() - cpu
        await d.aclose()
        return sent - 1, elapsed

    result = asyncio.run(one_task_per_message())
    engine.dispose()
    return result


async def raw_loop(base: str, n: int, in_flight: int = 48) -> tuple[int, float]:
    """The ceiling: a bare aiohttp session, the form encoded up front, ``in_flight`` workers."""
    import aiohttp

    url = f"{base}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode(),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    ok = 0
    counter = iter(range(n))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:

        async def worker() -> None:
            nonlocal ok
            for i in counter:
                data = urlencode({"To": f"+86139{i:08d}", "From": "+15005550006", "Body": BODY})
                async with session.post(url, data=data, headers=headers) as resp:
                    await resp.read()
                    ok += resp.status == 201

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.perf_counter() - started
        CPU_S["raw"] = min(CPU_S.get("raw", float("inf")), time.process_time() - cpu)
        return ok, elapsed


def flow_path(url: str, base: str, n: int, batch: int, lanes: int, tmp: Path) -> tuple[int, float]:
    """``engine.runtime.flows.dispatch_flow`` as the service runs it: adapters from the environment, one
    Prefect task per batch, ``lanes`` at a time. A first run with nothing due starts Prefect's
    local API (about 6 s, once per process) and is not timed."""
    import yaml

    config = tmp / "config"
    shutil.copytree(Path(__file__).resolve().parent.parent / "config", config)
    delivery = yaml.safe_load((config / "delivery.yaml").read_text(encoding="utf-8"))
    delivery["rate_limits"] = {channel: 1_000_000 for channel in delivery.get("rate_limits", {})}
    (config / "delivery.yaml").write_text(yaml.safe_dump(delivery, allow_unicode=True), encoding="utf-8")
    for name in [k for k in os.environ if k.startswith(("TWILIO_", "WECHAT_", "SMTP_", "EMAIL_"))]:
        del os.environ[name]
    os.environ.pop("JOURNEYS_OUTBOX_DIR", None)
    os.environ.pop("JOURNEYS_PUBLIC_URL", None)
    os.environ.update(
        JOURNEYS_DATABASE_URL=url, JOURNEYS_CONFIG_DIR=str(config), TWILIO_ACCOUNT_SID=ACCOUNT,
        TWILIO_AUTH_TOKEN=TOKEN, TWILIO_FROM="+15005550006", TWILIO_API_BASE=base,
    )
    from engine.runtime.flows import dispatch_flow

    _prepare(url, 0, schema_only=True)
    start_prefect()
    asyncio.run(dispatch_flow(batch_size=batch, lanes=lanes, worker_id="flow"))  # warm: nothing due
    _prepare(url, n)
    started, cpu = time.perf_counter(), time.process_time()
    result = asyncio.run(dispatch_flow(batch_size=batch, lanes=lanes, worker_id="flow"))
    elapsed = time.perf_counter() - started
    CPU_S["flow"] = time.process_time() - cpu
    assert result["failed"] == {} and result["deferred"] == 0, result
    return int(result["sent"]), elapsed


def start_prefect() -> None:
    """Prefect's local engine, before anything is timed: with time to spare on a busy machine and one
    retry (``engine.runtime.local_engine``), not on Prefect's 20 s default at the first flow run."""
    from engine.runtime.local_engine import start_local_engine

    print("starting Prefect's local engine", flush=True)
    started = time.perf_counter()
    start_local_engine()
    print(f"Prefect's local engine is up ({time.perf_counter() - started:.0f} s)", flush=True)


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", "--n", dest="n", type=int, default=20000, help="messages to send (default 20,000)")
    parser.add_argument("--per-task-n", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--lanes", type=int, default=3)
    parser.add_argument("--skip-per-task", action="store_true")
    parser.add_argument("--skip-flow", action="store_true")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="the whole path on a throw-away database on this PostgreSQL server (the flow and the "
                             "per-task runs stay on SQLite)")
    add_common(parser)
    args = parser.parse_args()

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # Prefect's in-process API logs its event recorder being cancelled mid-flush when it shuts
    # down at exit, after the figures: noise about Prefect's shutdown, not about dispatch.
    os.environ.setdefault("PREFECT_LOGGING_SERVER_LEVEL", "CRITICAL")
    # Prefect's local API shuts down at exit, after the benchmark: its home must outlive the
    # run (removed by an exit hook registered before Prefect registers its own, so it runs last).
    prefect_home = tempfile.mkdtemp(prefix="dispatch-bench-prefect-")
    atexit.register(shutil.rmtree, prefect_home, True)
    os.environ.setdefault("PREFECT_HOME", prefect_home)
    from engine.runtime.local_engine import stop_local_engine

    print(f"start: {_load()}", flush=True)
    try:
        return _run(args)
    finally:
        stop_local_engine()  # before its home is removed, and even when a phase failed


def _run(args: argparse.Namespace) -> int:
    from standins.server import ProcessStandin

    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, ProcessStandin("twilio", callbacks=False) as standin:
        base = standin.base_url

        asyncio.run(raw_loop(base, min(2000, args.n)))  # warm-up, as the channel benchmark does
        CPU_S.pop("raw", None)
        raw_n, raw_s = asyncio.run(raw_loop(base, args.n))
        raw_rates = [raw_n / raw_s]
        print(f"raw aiohttp loop     : {raw_n:>6} sends in {raw_s:6.2f} s = {raw_rates[0]:8.0f} sends/s", flush=True)

        with ExitStack() as databases:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            if args.postgres:
                from tests.db_support import scratch_postgres_database

                admin = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1)
                url, _admin = databases.enter_context(
                    scratch_postgres_database(admin, f"dispatch_bench_{uuid.uuid4().hex[:8]}"))
            _prepare(url, args.n)
            try:
                sent, secs = asyncio.run(whole_path(url, base, args.batch, args.lanes))
            finally:
                from store.db import get_engine

                get_engine(url).dispose()  # before a PostgreSQL database is dropped
        rows.append((f"whole dispatch path (batch {args.batch}, {args.lanes} lanes)", sent / secs))
        print(f"whole dispatch path  : {sent:>6} sends in {secs:6.2f} s = {sent / secs:8.0f} sends/s", flush=True)

        if not args.skip_flow:
            url3 = f"sqlite:///{Path(tmp) / 'flow.db'}"
            f_sent, f_secs = flow_path(url3, base, args.n, args.batch, args.lanes, Path(tmp))
            rows.append((f"Prefect dispatch flow (task per batch of {args.batch})", f_sent / f_secs))
            print(f"dispatch flow        : {f_sent:>6} sends in {f_secs:6.2f} s = {f_sent / f_secs:8.0f} sends/s",
                  flush=True)

        pt_rate = None
        if not args.skip_per_task:
            url2 = f"sqlite:///{Path(tmp) / 'per_task.db'}"
            _prepare(url2, args.per_task_n + 1)
            pt_sent, pt_secs = per_task(url2, base)
            pt_rate = pt_sent / pt_secs
            print(f"one task per message : {pt_sent:>6} sends in {pt_secs:6.2f} s = {pt_rate:8.0f} sends/s", flush=True)

        raw_n2, raw_s2 = asyncio.run(raw_loop(base, args.n))
        raw_rates.append(raw_n2 / raw_s2)
        print(f"raw aiohttp loop     : {raw_n2:>6} sends in {raw_s2:6.2f} s = {raw_rates[1]:8.0f} sends/s (again)",
              flush=True)
    raw_rate = max(raw_rates)
    print(f"end: {_load()}")
    print()
    def us(key: str, n: int) -> str:
        return f"{CPU_S[key] / n * 1e6:>8.0f}" if key in CPU_S else f"{'-':>8}"

    print(f"{'path':<48} {'sends/s':>8} {'x raw':>6} {'x per-task':>10} {'CPU us':>8}  bar")
    print(f"{'raw aiohttp loop (best of two)':<48} {raw_rate:>8.0f} {1:>6.2f} {'':>10} {us('raw', args.n)}")
    if pt_rate is not None:
        print(f"{'one Prefect task per message':<48} {pt_rate:>8.0f} {pt_rate / raw_rate:>6.2f} {1:>10.1f} "
              f"{us('per_task', args.per_task_n)}")
    for (label, rate), key in zip(rows, ("whole", "flow"), strict=False):
        times = rate / pt_rate if pt_rate else None
        met = rate >= 2000 and rate >= RAW_SHARE * raw_rate and (times is None or times >= 20)
        times_text = f"{times:>10.1f}" if times is not None else f"{'-':>10}"
        print(f"{label:<48} {rate:>8.0f} {rate / raw_rate:>6.2f} {times_text} {us(key, args.n)}  "
              f"{'met' if met else 'NOT met'}")
    print("(CPU us = client-process CPU microseconds per send, all threads)")

    report = Report("dispatch", args.n, "messages")
    report.add("raw_per_s", "raw aiohttp loop (best of two)", raw_rate, "sends/s", digits=0)
    if pt_rate is not None:
        report.add("per_task_per_s", "one Prefect task per message", pt_rate, "sends/s", digits=0)
    for (label, rate), key in zip(rows, ("whole", "flow"), strict=False):
        report.add(f"{key}_per_s", label, rate, "sends/s", bar=">= 2,000", met=rate >= 2000, digits=0)
        report.add(f"{key}_x_raw", f"{label} / raw", rate / raw_rate, "ratio", bar=f">= {RAW_SHARE:.2f}",
                   met=rate >= RAW_SHARE * raw_rate, digits=2)
        if pt_rate:
            report.add(f"{key}_x_per_task", f"{label} / per-task", rate / pt_rate, "ratio", bar=">= 20",
                       met=rate / pt_rate >= 20, digits=1)
    return report.finish(args)


if __name__ == "__main__":
    sys.exit(main())
