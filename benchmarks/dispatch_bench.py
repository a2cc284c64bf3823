"""Dispatch throughput through the whole path (claim, render, send, record) to the Twilio stand-in,
against one Prefect task per message and against the fastest raw client loop (aiohttp) to the same
stand-in in the same conditions.

    .venv/bin/python benchmarks/dispatch_bench.py [--n 20000] [--per-task-n 500] [--batch 1000] [--lanes 3]

The stand-in runs in its own process (bare aiohttp, no callbacks). The database is a fresh
SQLite file in a temporary folder. Rate limits are lifted for the run: the point is what the
pipeline can do; production pacing comes from config/delivery.yaml.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ACCOUNT = "AC" + "0" * 32
TOKEN = "standin-auth-token"
BODY = "【安心保险】您好，本周为您精选的专属关怀礼包已上线，登录APP即可领取。回复TD退订"


def _prepare(url: str, n: int) -> None:
    from sqlalchemy import text

    from store.db import make_engine
    from store.migrate import upgrade
    from tests.dispatch_support import make_customers, make_touches

    upgrade(url)
    engine = make_engine(url)
    ids = make_customers(engine, n)
    make_touches(engine, ids, channel="sms")
    with engine.begin() as conn:
        conn.execute(text("UPDATE touch SET template = 'silver_weekly_push', category = 'marketing'"))
    engine.dispose()


def _adapter(base: str) -> Any:
    from channels.sms_twilio import TwilioSmsAdapter

    return TwilioSmsAdapter(ACCOUNT, TOKEN, "+15005550006", api_base=base, concurrency=48)


async def whole_path(url: str, base: str, batch: int, lanes: int) -> tuple[int, float]:
    from engine.dispatch import make_dispatcher
    from store.db import make_engine

    engine = make_engine(url)
    dispatcher = make_dispatcher(engine, {"sms": _adapter(base)}, worker_id="bench", batch_size=batch, lanes=lanes)
    dispatcher.limiter._buckets.clear()  # lift the configured rate for the measurement
    started = time.perf_counter()
    counts = await dispatcher.run_until_idle()
    elapsed = time.perf_counter() - started
    await dispatcher.aclose()
    engine.dispose()
    assert counts.failed == {} and counts.deferred == 0, counts.summary()
    return counts.sent, elapsed


def per_task(url: str, base: str) -> tuple[int, float]:
    """One Prefect task per message: claim one, render, send, record — the way not to do it."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from engine.dispatch import make_dispatcher
    from store.db import make_engine

    engine = make_engine(url)

    @task(cache_policy=NO_CACHE)
    async def send_one(d: Any) -> int:
        counts = await d.run_batch()
        return counts.sent if counts else 0

    @flow
    async def one_task_per_message() -> tuple[int, float]:
        d = make_dispatcher(engine, {"sms": _adapter(base)}, worker_id="per-task", batch_size=1, lanes=1)
        d.limiter._buckets.clear()
        await send_one(d)  # warm: the first task run pays one-off costs
        started = time.perf_counter()
        sent = 1
        while True:
            got = await send_one(d)
            if not got:
                break
            sent += got
        elapsed = time.perf_counter() - started
        await d.aclose()
        return sent - 1, elapsed

    result = asyncio.run(one_task_per_message())
    engine.dispose()
    return result


async def raw_loop(base: str, n: int, in_flight: int = 32) -> tuple[int, float]:
    import aiohttp

    url = f"{base}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    auth = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    ok = 0
    counter = iter(range(n))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:

        async def worker() -> None:
            nonlocal ok
            for i in counter:
                data = {"To": f"+86139{i:08d}", "From": "+15005550006", "Body": BODY}
                async with session.post(url, data=data, headers={"Authorization": auth}) as resp:
                    await resp.read()
                    ok += resp.status == 201

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return ok, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--per-task-n", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--lanes", type=int, default=3)
    parser.add_argument("--skip-per-task", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from standins.server import ProcessStandin

    with tempfile.TemporaryDirectory() as tmp, ProcessStandin("twilio", callbacks=False) as standin:
        os.environ.setdefault("PREFECT_HOME", str(Path(tmp) / "prefect"))
        base = standin.base_url

        raw_n, raw_s = asyncio.run(raw_loop(base, args.n))
        raw_rate = raw_n / raw_s
        print(f"raw aiohttp loop     : {raw_n:>6} sends in {raw_s:6.2f} s = {raw_rate:8.0f} sends/s")

        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        _prepare(url, args.n)
        sent, secs = asyncio.run(whole_path(url, base, args.batch, args.lanes))
        rate = sent / secs
        print(f"whole dispatch path  : {sent:>6} sends in {secs:6.2f} s = {rate:8.0f} sends/s "
              f"(batch {args.batch}, {args.lanes} lanes) = {rate / raw_rate:.2f}x raw")

        if not args.skip_per_task:
            url2 = f"sqlite:///{Path(tmp) / 'per_task.db'}"
            _prepare(url2, args.per_task_n + 1)
            pt_sent, pt_secs = per_task(url2, base)
            pt_rate = pt_sent / pt_secs
            print(f"one task per message : {pt_sent:>6} sends in {pt_secs:6.2f} s = {pt_rate:8.0f} sends/s "
                  f"-> batches are {rate / pt_rate:.1f}x faster")
        verdict = rate >= 2000 and rate >= 0.3 * raw_rate
        print(f"bar (>= 2000/s, >= 0.3x raw{', >= 20x per-task' if not args.skip_per_task else ''}): "
              f"{'met' if verdict else 'NOT met'}")


if __name__ == "__main__":
    main()
