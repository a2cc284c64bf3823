"""Channel send throughput: SMS (Twilio SDK), WeChat and app push (JPush; httpx on aiohttp) adapters
against their stand-ins, next to the fastest raw client loop (aiohttp, N in flight) to the same stand-in.

    .venv/bin/python benchmarks/channel_throughput.py [--size 20000] [--concurrency 48] [--only sms|wechat|push]

Each stand-in runs in its own process (callbacks off), so client and server do not
share an event loop or a GIL; on a 2-core machine they still share the cores, so the
figures are per client process with the server beside it. Bar: >= 2,000 sends/s each.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Report, add_common
from channels.base import ChannelAdapter, OutboundMessage, RenderedMessage
from channels.push_jpush import JPushAdapter, basic_auth, push_payload
from channels.sms_twilio import TwilioSmsAdapter
from channels.wechat import WeChatTemplateAdapter
from standins.server import ProcessStandin

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "standin-auth-token"
APPID, SECRET = "wxstandin000000001", "standin-app-secret"
BAR = 2000.0
JPUSH_KEY, JPUSH_SECRET = "standinappkey0000000001", "standin-master-secret"
CHANNEL_STANDIN = {"sms": "Twilio", "wechat": "WeChat", "push": "JPush"}


def sms_messages(n: int) -> list[OutboundMessage]:
    content = RenderedMessage(
        "sms", "renewal", "zh-CN", text="尊敬的客户，您的车险将于12月1日到期，请及时续保。", segments=1
    )
    callback = "https://hooks.insurer.example.com/webhooks/twilio/status"
    return [
        OutboundMessage(i, f"c{i}:renewal:s1:2026-W48", f"+86138{i:08d}", content, status_callback_url=callback)
        for i in range(n)
    ]


def wechat_messages(n: int, run: str = "") -> list[OutboundMessage]:
    """``run`` goes into the touch key: the stand-in drops a repeat of a key (client_msg_id) as WeChat
    does, so each phase of the benchmark sends keys of its own."""
    content = RenderedMessage(
        "wechat",
        "renewal",
        "zh-CN",
        wechat_template_id="TPL_RENEWAL",
        wechat_url="https://m.insurer.example.com/renew",
        wechat_data={
            "first": "您的车险即将到期",
            "keyword1": "沪A·12345",
            "keyword2": "2026-12-01",
            "remark": "点击续保",
        },
    )
    return [
        OutboundMessage(i, f"c{i}:renewal:s1:2026-W48{run}", f"o6_bmjrPTlm6_2sgVt7hMZ{i:06d}", content)
        for i in range(n)
    ]


def push_messages(n: int, run: str = "") -> list[OutboundMessage]:
    content = RenderedMessage("push", "silver_weekly_push", "zh-CN", subject="安心保险 · 本周会员精选",
                              text="王小明您好，本周白银会员专属内容已更新：健康小贴士、会员福利，点击查看。")
    return [OutboundMessage(i, f"c{i}:silver-weekly-push:push:2026-W48{run}", f"1a0018970af2a{i:06d}", content,
                            "marketing") for i in range(n)]


CPU_US: dict[str, float] = {}  # label -> client CPU microseconds per send


async def timed(label: str, n: int, run: Callable[[], Awaitable[int]]) -> float:
    """Wall-clock sends/s; the client's CPU time per send is kept too, since on a shared machine
    it moves far less with the load than the wall-clock rate does."""
    started, cpu = time.perf_counter(), time.process_time()
    ok = await run()
    elapsed = time.perf_counter() - started
    CPU_US[label] = (time.process_time() - cpu) / n * 1e6
    rate = n / elapsed
    print(f"  {label:<44} {n:>6} sent, {ok:>6} ok in {elapsed:6.2f} s = {rate:8.0f} sends/s, "
          f"client CPU {CPU_US[label]:5.0f} us/send", flush=True)
    if ok != n:
        raise SystemExit(f"{label}: only {ok} of {n} accepted")
    return rate


async def timed_adapter(
    label: str, adapter: ChannelAdapter, warm: list[OutboundMessage], messages: list[OutboundMessage]
) -> float:
    """An adapter's sends/s for one ``send_batch`` of ``messages``, after a warm-up batch; closes the adapter."""
    try:
        await adapter.send_batch(warm)

        async def run() -> int:
            return sum(r.ok for r in await adapter.send_batch(messages))

        return await timed(label, len(messages), run)
    finally:
        await adapter.aclose()


async def raw_loop(n: int, concurrency: int, request: Callable[[aiohttp.ClientSession, int], Awaitable[bool]]) -> int:
    """The ceiling: a bare aiohttp session with a fixed pool of workers, nothing else."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    ok = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        pending = iter(range(n))

        async def worker() -> None:
            nonlocal ok
            for i in pending:
                accepted = await request(session, i)  # awaited first: `ok += await ...` loses updates
                ok += accepted

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


async def bench_sms(n: int, concurrency: int, warmup: int) -> tuple[float, float]:
    with ProcessStandin("twilio", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, callbacks=False) as standin:
        url = f"{standin.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        messages = sms_messages(n)

        async def raw_request(session: aiohttp.ClientSession, i: int) -> bool:
            m = messages[i]
            form = {"To": m.to, "From": "+15005550006", "Body": m.content.text, "StatusCallback": m.status_callback_url}
            headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
            async with session.post(url, data=urlencode(form), headers=headers) as resp:
                await resp.read()
                return resp.status == 201

        await raw_loop(warmup, concurrency, raw_request)
        raw = await timed(
            f"raw aiohttp -> Twilio stand-in ({concurrency} in flight)",
            n,
            lambda: raw_loop(n, concurrency, raw_request),
        )

        adapter = TwilioSmsAdapter(
            ACCOUNT_SID, AUTH_TOKEN, "+15005550006", api_base=standin.base_url, concurrency=concurrency
        )
        sdk = await timed_adapter(
            f"SMS adapter (twilio SDK, {concurrency} in flight)", adapter, messages[:warmup], messages
        )
        summary = await standin.summary()
        print(f"  stand-in accepted {summary['accepted']} messages", flush=True)
    return sdk, raw


async def bench_wechat(n: int, concurrency: int, warmup: int) -> tuple[float, float]:
    with ProcessStandin("wechat", appid=APPID, secret=SECRET, callbacks=False) as standin:
        messages = wechat_messages(n, ":raw")
        warm = wechat_messages(warmup, ":warm")
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{standin.base_url}/cgi-bin/token",
                params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET},
            ) as resp,
        ):
            token = (await resp.json())["access_token"]
        url = f"{standin.base_url}/cgi-bin/message/template/send?access_token={token}"

        async def raw_request(session: aiohttp.ClientSession, i: int, batch: list[OutboundMessage] = messages) -> bool:
            m = batch[i]
            payload = {
                "touser": m.to,
                "template_id": m.content.wechat_template_id,
                "url": m.content.wechat_url,
                "data": {k: {"value": v} for k, v in m.content.wechat_data.items()},
                "client_msg_id": m.touch_key,
            }
            body = json.dumps(payload, ensure_ascii=False).encode()
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                return (await resp.json(content_type=None)).get("errcode") == 0

        await raw_loop(warmup, concurrency, lambda session, i: raw_request(session, i, warm))
        raw = await timed(
            f"raw aiohttp -> WeChat stand-in ({concurrency} in flight)",
            n,
            lambda: raw_loop(n, concurrency, raw_request),
        )

        adapter = WeChatTemplateAdapter(APPID, SECRET, api_base=standin.base_url, concurrency=concurrency)
        adapter_rate = await timed_adapter(
            f"WeChat adapter (httpx-aiohttp, {concurrency} in flight)",
            adapter,
            wechat_messages(warmup, ":adapter-warm"),
            wechat_messages(n, ":adapter"),
        )
        summary = await standin.summary()
        print(f"  stand-in accepted {summary['accepted']} messages, {summary['counts'].get('token', 0)} token fetches")
    return adapter_rate, raw


async def bench_push(n: int, concurrency: int, warmup: int) -> tuple[float, float]:
    with ProcessStandin("jpush", app_key=JPUSH_KEY, master_secret=JPUSH_SECRET) as standin:
        messages = push_messages(n, ":raw")
        warm = push_messages(warmup, ":warm")
        url = f"{standin.base_url}/v3/push"
        headers = {"Authorization": basic_auth(JPUSH_KEY, JPUSH_SECRET), "Content-Type": "application/json"}

        async def raw_request(session: aiohttp.ClientSession, i: int, batch: list[OutboundMessage] = messages) -> bool:
            body = json.dumps(push_payload(batch[i]), ensure_ascii=False).encode()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status == 200

        await raw_loop(warmup, concurrency, lambda session, i: raw_request(session, i, warm))
        raw = await timed(f"raw aiohttp -> JPush stand-in ({concurrency} in flight)", n,
                          lambda: raw_loop(n, concurrency, raw_request))
        adapter = JPushAdapter(JPUSH_KEY, JPUSH_SECRET, api_base=standin.base_url, concurrency=concurrency)
        adapter_rate = await timed_adapter(f"Push adapter (JPush, httpx-aiohttp, {concurrency} in flight)", adapter,
                                           push_messages(warmup, ":adapter-warm"), push_messages(n, ":adapter"))
        summary = await standin.summary()
        print(f"  stand-in accepted {summary['accepted']} pushes", flush=True)
    return adapter_rate, raw


def _load() -> str:
    # The machine is shared: figures mean little without the load they were taken under.
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", "--messages", dest="messages", type=int, default=20_000,
                        help="messages per phase (default 20,000)")
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--only", choices=["sms", "wechat", "push"])
    add_common(parser)
    args = parser.parse_args()
    args.warmup = min(args.warmup, args.messages)  # a tiny run must not warm up with more than it sends

    rows = []
    print(f"start: {_load()}", flush=True)
    if args.only in (None, "sms"):
        print("SMS (Twilio Messages API stand-in, separate process, callbacks off)")
        rows.append(("sms", *await bench_sms(args.messages, args.concurrency, args.warmup)))
    if args.only in (None, "wechat"):
        print("WeChat (template send stand-in, separate process, callbacks off)")
        rows.append(("wechat", *await bench_wechat(args.messages, args.concurrency, args.warmup)))
    if args.only in (None, "push"):
        print("App push (JPush v3 push stand-in, separate process)")
        rows.append(("push", *await bench_push(args.messages, args.concurrency, args.warmup)))

    print(f"end: {_load()}")
    print()
    print(f"{'channel':<8} {'adapter/s':>10} {'raw/s':>10} {'ratio':>7} {'adapter us':>11} {'raw us':>7}  "
          f"bar {BAR:.0f}/s")
    for channel, adapter_rate, raw_rate in rows:
        verdict = "met" if adapter_rate >= BAR else "MISSED"
        cpu_adapter = next(v for k, v in CPU_US.items() if k.lower().startswith(channel))
        cpu_raw = next(v for k, v in CPU_US.items() if k.startswith("raw") and CHANNEL_STANDIN[channel] in k)
        print(f"{channel:<8} {adapter_rate:>10.0f} {raw_rate:>10.0f} {adapter_rate / raw_rate:>7.2f} "
              f"{cpu_adapter:>11.0f} {cpu_raw:>7.0f}  {verdict}")
    print("(us = client CPU microseconds per send)")

    report = Report("channel_throughput", args.messages, "messages")
    for channel, adapter_rate, raw_rate in rows:
        report.add(f"{channel}_adapter_per_s", f"{channel} adapter", adapter_rate, "sends/s", bar=f">= {BAR:,.0f}",
                   met=adapter_rate >= BAR, digits=0)
        report.add(f"{channel}_raw_per_s", f"{channel} raw aiohttp loop", raw_rate, "sends/s", digits=0)
        report.add(f"{channel}_x_raw", f"{channel} adapter / raw", adapter_rate / raw_rate, "ratio", digits=2)
    return report.finish(args)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
