"""WeChat template-message adapter (httpx on aiohttp) against the WeChat stand-in over loopback."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing

import pytest

from channels.base import OutboundMessage, RenderedMessage
from channels.wechat import WeChatTemplateAdapter, client_msg_id
from standins.sink import WebhookSink
from standins.wechat_api import WeChatStandin, signature
from tests.standin_support import serving


class FakeClock:
    """Monotonic time the test moves forward, to expire the cached token without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wx(i: int, openid: str | None = None, template: str = "TPL_RENEWAL") -> OutboundMessage:
    content = RenderedMessage(
        channel="wechat",
        template="renewal",
        locale="zh-CN",
        wechat_template_id=template,
        wechat_url="https://m.example.com/policy/renew?p=1",
        wechat_data={"first": "您的车险即将到期", "keyword1": "沪A·12345", "remark": "点击续保"},
    )
    return OutboundMessage(i, f"c{i}:renewal:s1:2026-W48", openid or f"o6_bmjrPTlm6_2sgVt7hMZOPf{i:03d}", content)


@pytest.fixture
def standin() -> Iterator[WeChatStandin]:
    yield from serving(WeChatStandin())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def adapter(standin: WeChatStandin, clock: FakeClock) -> AsyncIterator[WeChatTemplateAdapter]:
    async with aclosing(WeChatTemplateAdapter(standin.appid, standin.secret, api_base=standin.base_url, timeout=2,
                                              clock=clock)) as wechat:
        yield wechat


async def test_template_message_arrives_as_sent(standin: WeChatStandin, adapter: WeChatTemplateAdapter) -> None:
    messages = [wx(i) for i in range(3)]
    results = await adapter.send_batch(messages)

    assert [r.touch_key for r in results] == [m.touch_key for m in messages]
    assert all(r.ok for r in results)
    entries = {e.message_id: e for e in standin.log.entries}
    assert set(entries) == {r.provider_message_id for r in results}
    for message, result in zip(messages, results, strict=True):
        entry = entries[result.provider_message_id or ""]
        assert entry.recipient == message.to
        assert entry.key == client_msg_id(message.touch_key) == message.touch_key
        assert entry.detail["template_id"] == "TPL_RENEWAL"
        assert entry.detail["url"] == message.content.wechat_url
        assert entry.detail["data"] == {k: {"value": v} for k, v in message.content.wechat_data.items()}
    assert standin.counts["token"] == 1


def test_long_touch_keys_are_hashed_to_a_stable_client_msg_id() -> None:
    key = "c1:" + "x" * 100
    assert len(client_msg_id(key)) == 64
    assert client_msg_id(key) == client_msg_id(key)


async def test_expired_token_under_100_concurrent_sends_is_fetched_once(
    standin: WeChatStandin, adapter: WeChatTemplateAdapter, clock: FakeClock
) -> None:
    assert (await adapter.send_batch([wx(0)]))[0].ok
    assert standin.counts["token"] == 1

    clock.now += 7200  # past expires_in: every send below finds the cached token stale
    results = await asyncio.gather(*(adapter.send_one(wx(i)) for i in range(1, 101)))

    assert all(r.ok for r in results)
    assert standin.counts["token"] == 2
    assert adapter.tokens.fetches == 2


async def test_token_is_refreshed_before_it_expires(
    standin: WeChatStandin, adapter: WeChatTemplateAdapter, clock: FakeClock
) -> None:
    await adapter.send_batch([wx(0)])
    clock.now += 7200 - 600  # inside the lifetime, before the refresh margin
    await adapter.send_batch([wx(1)])
    assert standin.counts["token"] == 1
    clock.now += 400  # within 300 s of expiry: refreshed ahead of time
    await adapter.send_batch([wx(2)])
    assert standin.counts["token"] == 2


async def test_invalidated_token_40001_is_refreshed_once_and_each_send_retried_once(standin: WeChatStandin) -> None:
    # 100 in flight at once, so that all of them are refused with the revoked token.
    adapter = WeChatTemplateAdapter(standin.appid, standin.secret, api_base=standin.base_url, concurrency=100)
    try:
        await adapter.send_batch([wx(0)])
        standin.revoke_tokens()  # as when another process fetched a newer token
        results = await adapter.send_batch([wx(i) for i in range(1, 101)])
    finally:
        await adapter.aclose()

    assert all(r.ok for r in results)
    assert standin.counts["token"] == 2
    assert standin.counts["errcode:40001"] == 100
    assert standin.counts["send"] == 1 + 100 + 100  # each refused once with 40001, then retried once
    assert len(standin.log) == 101
    assert standin.log.duplicates() == {}


async def test_a_token_refused_again_after_refresh_is_not_retried_twice() -> None:
    with WeChatStandin(token_ttl=0) as standin:  # every token is expired on arrival: 42001
        assert isinstance(standin, WeChatStandin)
        adapter = WeChatTemplateAdapter(standin.appid, standin.secret, api_base=standin.base_url, timeout=2)
        try:
            [result] = await adapter.send_batch([wx(1)])
        finally:
            await adapter.aclose()
        assert (result.ok, result.error_class, result.error_code) == (False, "retryable", "42001")
        assert standin.counts["send"] == 2
        assert standin.counts["token"] == 2


async def test_errcodes_are_classified(standin: WeChatStandin, adapter: WeChatTemplateAdapter) -> None:
    standin.unsubscribed.add("o_unsubscribed")
    standin.forced_errcodes.update({"o_bad_openid": 40003, "o_busy": -1, "o_quota": 45009, "o_refused": 43101,
                                    "o_frequency": 45047})
    standin.templates = {"TPL_RENEWAL"}
    batch = [
        wx(1, "o_unsubscribed"),
        wx(2, "o_bad_openid"),
        wx(3, template="TPL_UNKNOWN"),
        wx(4, "o_busy"),
        wx(5, "o_quota"),
        wx(6),
        wx(7, "o_refused"),
        wx(8, "o_frequency"),
    ]
    results = await adapter.send_batch(batch)
    assert [(r.ok, r.error_class, r.error_code) for r in results] == [
        (False, "permanent", "43004"),
        (False, "permanent", "40003"),
        (False, "permanent", "40037"),
        (False, "retryable", "-1"),
        (False, "retryable", "45009"),
        (True, None, None),
        (False, "permanent", "43101"),
        (False, "retryable", "45047"),
    ]
    assert "not subscribed" in (results[0].error_reason or "")
    # 43101 is worded, not left as "errcode 43101" (which was also classed retryable: no fallback).
    assert "refused to receive" in (results[6].error_reason or "")
    assert len(standin.log) == 1


async def test_http_5xx_and_an_unanswered_send_are_repeated_with_the_key(
    standin: WeChatStandin, clock: FakeClock
) -> None:
    adapter = WeChatTemplateAdapter(standin.appid, standin.secret, api_base=standin.base_url, timeout=0.3,
                                    clock=clock, retry_pause=0.01)
    try:
        await adapter.tokens.get()
        standin.faults.configure(error_5xx_rate=1.0)
        [overloaded] = await adapter.send_batch([wx(1)])
        standin.faults.configure(error_5xx_rate=0.0, timeout_rate=1.0, hang_s=3.0)
        [hung] = await adapter.send_batch([wx(2)])
        # Seed 1 draws a timeout, then none: the reply to the first try is lost, the repeat
        # is answered.
        standin.faults.configure(timeout_rate=0.5, seed=1)
        [recovered] = await adapter.send_batch([wx(3)])
    finally:
        await adapter.aclose()
    # A 5xx may come after WeChat took the message: repeated with the key like a lost reply.
    assert (overloaded.error_class, overloaded.error_code) == ("unknown", "http:503")
    assert "3 tries" in (overloaded.error_reason or "")
    # Three tries with the same client_msg_id, none answered: delivery unknown, not retryable.
    assert (hung.ok, hung.error_class, hung.error_code) == (False, "unknown", "timeout")
    assert "3 tries" in (hung.error_reason or "")
    assert (recovered.ok, recovered.provider_status) == (True, "duplicate")
    # Accepted once each, the repeats deduplicated by client_msg_id.
    assert [e.key for e in standin.log.entries] == [wx(2).touch_key, wx(3).touch_key]
    assert standin.counts["deduplicated"] == 3
    assert recovered.provider_message_id == standin.log.entries[1].message_id


async def test_unreachable_api_is_a_retryable_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = WeChatTemplateAdapter("wxid", "secret", api_base=f"http://127.0.0.1:{port}", timeout=2)
    try:
        [result] = await adapter.send_batch([wx(1)])
    finally:
        await adapter.aclose()
    assert (result.ok, result.error_class) == (False, "retryable")
    assert result.error_code == "token:None"


async def test_wrong_secret_fails_retryably_and_is_never_logged(
    standin: WeChatStandin, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = WeChatTemplateAdapter(standin.appid, "wrong-secret-value", api_base=standin.base_url)
    try:
        with caplog.at_level(logging.DEBUG):
            [result] = await adapter.send_batch([wx(1)])
    finally:
        await adapter.aclose()
    assert (result.ok, result.error_class, result.error_code) == (False, "retryable", "token:40125")
    assert "wrong-secret-value" not in caplog.text
    assert "secret=***" in caplog.text  # httpx's request log line, redacted


async def test_send_job_finish_event_is_pushed_signed(standin: WeChatStandin, adapter: WeChatTemplateAdapter) -> None:
    standin.delivery_status["o_blocked"] = "failed:user block"
    async with WebhookSink(reply="success") as sink:
        standin.callback_url = f"{sink.base_url}/webhooks/wechat"
        results = await adapter.send_batch([wx(1), wx(2, "o_blocked")])
        await asyncio.to_thread(standin.run, standin.drain_callbacks())

    statuses = {}
    for request in sink.on("/webhooks/wechat"):
        q = request.query
        assert q["signature"] == signature(standin.callback_token, q["timestamp"], q["nonce"])
        expected = hashlib.sha1("".join(sorted([standin.callback_token, q["timestamp"], q["nonce"]])).encode())
        assert q["signature"] == expected.hexdigest()
        event = ET.fromstring(request.body)
        assert event.findtext("MsgType") == "event"
        assert event.findtext("Event") == "TEMPLATESENDJOBFINISH"
        assert event.findtext("ToUserName") == standin.account_id
        assert q["openid"] == event.findtext("FromUserName")
        statuses[event.findtext("MsgID")] = (event.findtext("FromUserName"), event.findtext("Status"))
    assert statuses == {
        results[0].provider_message_id: (wx(1).to, "success"),
        results[1].provider_message_id: ("o_blocked", "failed:user block"),
    }


async def test_inbound_text_message_is_pushed_signed(standin: WeChatStandin) -> None:
    async with WebhookSink(reply="success") as sink:
        url = f"{sink.base_url}/webhooks/wechat"
        status = await asyncio.to_thread(standin.run, standin.inject_text("o_customer", "退订", url))
    assert status == 200
    [request] = sink.received
    q = request.query
    assert q["signature"] == signature(standin.callback_token, q["timestamp"], q["nonce"])
    message = ET.fromstring(request.body)
    assert (message.findtext("MsgType"), message.findtext("Content"), message.findtext("FromUserName")) == (
        "text",
        "退订",
        "o_customer",
    )
