"""App push through the JPush v3 adapter (httpx on aiohttp) against the JPush stand-in over loopback."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from dataclasses import replace

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.base import OutboundMessage, RenderedMessage
from channels.errors import Classified, classify_jpush
from channels.push_jpush import DELIVERED, NOT_DELIVERED, JPushAdapter, oversize, push_payload, sendno
from channels.registry import build_adapter
from standins.jpush_api import JPushStandin
from tests.standin_support import serving

RID = "1a0018970af2a5b1c4d"


def push(i: int, rid: str | None = None, category: str = "marketing") -> OutboundMessage:
    content = RenderedMessage(channel="push", template="silver_weekly_push", locale="zh-CN",
                              subject="安心保险 · 本周会员精选", text=f"王小明您好，本周会员专属内容已更新 {i}")
    return OutboundMessage(i, f"{i}:silver-weekly-push:push:2026-W48", rid or f"{RID}{i:03d}", content, category)


@pytest.fixture
def standin() -> Iterator[JPushStandin]:
    yield from serving(JPushStandin())


@pytest.fixture
async def adapter(standin: JPushStandin) -> AsyncIterator[JPushAdapter]:
    async with aclosing(JPushAdapter("standinappkey0000000001", "standin-master-secret", api_base=standin.base_url,
                                     timeout=2)) as jpush:
        yield jpush


async def test_a_push_reaches_the_device_with_title_and_text_and_its_receipt_says_delivered(
        standin: JPushStandin, adapter: JPushAdapter) -> None:
    results = await adapter.send_batch([push(1), push(2)])
    assert [r.ok for r in results] == [True, True]
    assert all(r.provider_message_id and r.provider_message_id.isdigit() for r in results)
    entries = standin.log.entries
    assert [e.recipient for e in entries] == [f"{RID}001", f"{RID}002"]
    assert entries[0].detail == {"alert": "王小明您好，本周会员专属内容已更新 1", "title": "安心保险 · 本周会员精选"}
    # The number JPush echoes is the touch's: a repeat would show as a duplicate key.
    assert entries[0].key == str(sendno(push(1).touch_key)) and not standin.log.duplicates()

    standin.offline_devices.add(f"{RID}002")
    first, second = results
    assert first.provider_message_id and second.provider_message_id
    assert await adapter.delivery_status(first.provider_message_id, [f"{RID}001"]) == {f"{RID}001": DELIVERED}
    assert await adapter.delivery_status(second.provider_message_id, [f"{RID}002"]) == {f"{RID}002": NOT_DELIVERED}


@pytest.mark.parametrize(("fault", "error_class", "code"), [
    ("error_5xx_rate", "unknown", "http:503"),  # refused or not, the client cannot tell: never blindly re-sent
    ("accepted_5xx_rate", "unknown", "http:503"),
    ("rate_429", "retryable", "jpush:2002"),
    ("permanent_rate", "permanent", "jpush:1011"),
])
async def test_faults_are_classified_by_what_jpush_may_have_done(
        standin: JPushStandin, adapter: JPushAdapter, fault: str, error_class: str, code: str) -> None:
    standin.faults.configure(**{fault: 1.0})
    [result] = await adapter.send_batch([push(1)])
    assert (result.ok, result.error_class, result.error_code) == (False, error_class, code)


async def test_a_lost_reply_is_unknown_and_a_refused_connection_retryable(standin: JPushStandin) -> None:
    standin.faults.configure(timeout_rate=1.0, hang_s=3)
    async with aclosing(JPushAdapter("standinappkey0000000001", "standin-master-secret",
                                     api_base=standin.base_url, timeout=0.5)) as jpush:
        [lost] = await jpush.send_batch([push(1)])
    assert (lost.error_class, lost.error_code) == ("unknown", "timeout")
    assert len(standin.log) == 1  # JPush took it: retrying would push the device twice
    async with aclosing(JPushAdapter("k", "s", api_base="http://127.0.0.1:9", timeout=0.5)) as nowhere:
        [refused] = await nowhere.send_batch([push(2)])
    assert (refused.error_class, refused.error_code) == ("retryable", "connect_error")


async def test_wrong_credentials_and_an_unknown_device(standin: JPushStandin) -> None:
    async with aclosing(JPushAdapter("standinappkey0000000001", "wrong", api_base=standin.base_url)) as jpush:
        [refused] = await jpush.send_batch([push(1)])
    # Our credentials are for ops to fix, not a reason to move this customer to another channel.
    assert (refused.error_class, refused.error_code) == ("retryable", "jpush:1004")
    standin.unknown_devices.add(f"{RID}007")
    async with aclosing(JPushAdapter("standinappkey0000000001", "standin-master-secret",
                                     api_base=standin.base_url)) as jpush:
        [gone] = await jpush.send_batch([push(7)])
    assert (gone.error_class, gone.error_code) == ("permanent", "jpush:1011")
    assert "cannot find user" in (gone.error_reason or "")


async def test_the_request_is_the_documented_push_object_with_basic_auth(standin: JPushStandin) -> None:
    """Checked against the protocol by hand, not through the stand-in: what goes on the wire."""
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    async with aclosing(JPushAdapter("appkey", "secret", api_base=standin.base_url)) as jpush:
        jpush.http.event_hooks["request"].append(record)
        await jpush.send_batch([push(3)])
    [request] = seen
    assert request.url.path == "/v3/push" and request.method == "POST"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"appkey:secret").decode()
    body = json.loads(request.content)
    assert body["platform"] == "all" and body["audience"] == {"registration_id": [f"{RID}003"]}
    assert body["notification"]["android"]["title"] == "安心保险 · 本周会员精选"
    assert body["notification"]["ios"]["alert"]["body"] == body["notification"]["alert"]
    assert body["options"]["sendno"] == sendno(push(3).touch_key)


@given(st.text(min_size=1, max_size=80))
def test_sendno_is_a_positive_31_bit_number_stable_per_key(key: str) -> None:
    number = sendno(key)
    assert 0 <= number < 2**31 and number == sendno(key)
    assert push_payload(push(1))["options"]["sendno"] == sendno(push(1).touch_key)


async def test_the_registry_builds_jpush_from_the_environment(standin: JPushStandin) -> None:
    adapter = build_adapter("push", {"JPUSH_APP_KEY": "k", "JPUSH_MASTER_SECRET": "s",
                                     "JPUSH_API_BASE": standin.base_url})
    assert isinstance(adapter, JPushAdapter) and adapter.channel == "push"
    await adapter.aclose()
    with pytest.raises(Exception, match="push: set JPUSH_APP_KEY, JPUSH_MASTER_SECRET"):
        build_adapter("push", {})


def push_text(i: int, text: str, title: str = "安心保险 · 本周会员精选") -> OutboundMessage:
    message = push(i)
    return replace(message, content=replace(message.content, subject=title, text=text))


async def test_a_push_over_jpushs_byte_limits_is_refused_whole_and_one_at_the_limit_goes(
        standin: JPushStandin, adapter: JPushAdapter) -> None:
    # JPush counts UTF-8 bytes (a Chinese character is 3): Android's notification at most 4,000, the
    # "ios" object 3,584. Too long is refused before the call, permanently and saying why; the text
    # is never cut (a cut could fall inside a character, and would change what the template says).
    fits = max(n for n in range(2000) if oversize(push_payload(push_text(1, "续" * n))) is None)
    results = await adapter.send_batch([push_text(1, "续" * fits), push_text(2, "续" * (fits + 1)),
                                        push_text(3, "a" * 4000)])
    assert results[0].ok  # JPush (the stand-in, from the documented limits) takes the longest that fits
    for refused in results[1:]:
        assert (refused.ok, refused.error_class, refused.error_code) == (False, "permanent", "too_long")
        assert "bytes, JPush takes at most" in (refused.error_reason or "")
    assert standin.counts["push"] == 1
    # Over the limit on the wire, JPush answers 1005: a permanent refusal with its reason.
    assert classify_jpush(400, 1005) == Classified("permanent", "push content too long (JPush's byte limits)")
