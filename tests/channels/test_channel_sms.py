"""SMS adapter (official Twilio SDK) against the Twilio stand-in over loopback."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.base import values
from twilio.request_validator import RequestValidator

from channels.base import OutboundMessage, RenderedMessage
from channels.sms_twilio import TOUCH_KEY_PARAM, TwilioSmsAdapter, _with_touch_key, form_encode, with_touch_key
from standins.sink import WebhookSink
from standins.twilio_api import KEY_PARAM, TwilioStandin
from tests.standin_support import serving

FROM = "+15005550006"


def sms(
    i: int, to: str = "+8613800000000", text: str = "您的保单即将到期", callback: str | None = None
) -> OutboundMessage:
    content = RenderedMessage(channel="sms", template="renewal", locale="zh-CN", text=text, segments=1)
    return OutboundMessage(
        touch_id=i, touch_key=f"c{i}:renewal:s1:2026-W48", to=to, content=content, status_callback_url=callback
    )


@pytest.fixture
def standin() -> Iterator[TwilioStandin]:
    yield from serving(TwilioStandin())


@pytest.fixture
async def adapter(standin: TwilioStandin) -> AsyncIterator[TwilioSmsAdapter]:
    async with aclosing(TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url,
                                         timeout=2)) as sms_adapter:
        yield sms_adapter


async def drain(standin: TwilioStandin) -> None:
    # The stand-in's loop posts callbacks to a sink on ours: wait without blocking our loop.
    await asyncio.to_thread(standin.run, standin.drain_callbacks())


def test_form_encoding_is_byte_for_byte_urllibs() -> None:
    samples = {
        "To": "+8613800000000", "Body": "【安心保险】您好 Alex, 50% off & more: a+b=c ~_.- 回复TD退订\n😀",
        "StatusCallback": "https://hooks.example.com/s?touch_key=c1:renewal:s1:2026-W48&x=/@",
        "MediaUrl": ["https://a.example/1.png", "https://a.example/2 3.png"], "Flag": True, "N": 3, "": "",
    }
    assert form_encode(samples) == urlencode(samples, doseq=True).encode()


# Any text a body or name can hold (surrogates cannot be sent as UTF-8, so they are left out),
# with the bytes the encoder treats apart (space, '+', '%', '~', '-') drawn often.
_FORM_TEXT = st.text(st.one_of(st.sampled_from(" +%~-_.&=\n"), st.characters(exclude_categories=("Cs",))))


@given(st.dictionaries(_FORM_TEXT, st.one_of(_FORM_TEXT, st.lists(_FORM_TEXT, max_size=3)), max_size=5))
def test_form_encoding_of_any_text_is_urllibs(form: dict[str, str | list[str]]) -> None:
    assert form_encode(form) == urlencode(form, doseq=True).encode()


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/hooks/twilio/status",
    "https://hooks.example.com/s?a=1&b=x%20y",
    "https://hooks.example.com/s?touch_key=old&a=1#frag",
    "https://hooks.example.com",
    "http://127.0.0.1:9/s?x=a+b&y=/@:",
])
def test_cached_callback_url_is_the_one_built_from_scratch(url: str) -> None:
    for key in ("c1:renewal:s1:2026-W48", "k/with@odd chars&=+", "客户:1"):
        assert with_touch_key(url, key) == _with_touch_key(url, key)
        assert parse_qs(urlsplit(with_touch_key(url, key)).query)[TOUCH_KEY_PARAM] == [key]


def test_touch_key_param_is_the_one_the_standin_reads() -> None:
    assert TOUCH_KEY_PARAM == KEY_PARAM
    url = with_touch_key("https://hooks.example.com/twilio/status?x=1&touch_key=old", "c1:j:s:o")
    assert parse_qs(urlsplit(url).query) == {"x": ["1"], "touch_key": ["c1:j:s:o"]}


async def test_batch_arrives_at_twilio_as_sent(standin: TwilioStandin, adapter: TwilioSmsAdapter) -> None:
    messages = [sms(i, to=f"+861380000000{i}", callback="http://127.0.0.1:9/status") for i in range(5)]
    results = await adapter.send_batch(messages)

    assert [r.touch_key for r in results] == [m.touch_key for m in messages]
    assert all(r.ok and r.provider_status == "queued" for r in results)
    assert all(re.fullmatch(r"SM[0-9a-f]{32}", r.provider_message_id or "") for r in results)
    accepted = {e.message_id: e for e in standin.log.entries}
    assert set(accepted) == {r.provider_message_id for r in results}
    for message, result in zip(messages, results, strict=True):
        entry = accepted[result.provider_message_id or ""]
        assert entry.recipient == message.to
        assert entry.key == message.touch_key
        assert entry.detail["from"] == FROM
        assert entry.detail["body"] == message.content.text
    assert standin.log.duplicates() == {}


async def test_text_is_sent_as_rendered(standin: TwilioStandin, adapter: TwilioSmsAdapter) -> None:
    # Rendering owns the marketing footer and segment count; the adapter must not touch the text.
    text = "双十一续保优惠 回复TD退订"
    message = OutboundMessage(
        1, "k1", "+8613800000001", RenderedMessage("sms", "promo", "zh-CN", text=text), "marketing"
    )
    [result] = await adapter.send_batch([message])
    assert result.ok
    assert standin.log.entries[0].detail["body"] == text


async def test_twilio_error_codes_are_classified(standin: TwilioStandin, adapter: TwilioSmsAdapter) -> None:
    standin.recipient_errors["+8613800000021"] = 21610
    standin.recipient_errors["+8613800000022"] = 21614
    batch = [sms(1, to="12345"), sms(2, to="+8613800000021"), sms(3, to="+8613800000022"), sms(4)]
    results = await adapter.send_batch(batch)

    assert [(r.ok, r.error_class, r.error_code) for r in results] == [
        (False, "permanent", "21211"),
        (False, "permanent", "21610"),
        (False, "permanent", "21614"),
        (True, None, None),
    ]
    assert "unsubscribed" in (results[1].error_reason or "")
    assert [e.recipient for e in standin.log.entries] == ["+8613800000000"]


async def test_rate_limit_is_retryable(standin: TwilioStandin, adapter: TwilioSmsAdapter) -> None:
    standin.faults.configure(rate_429=1.0)
    [result] = await adapter.send_batch([sms(1)])
    assert (result.ok, result.error_class, result.error_code) == (False, "retryable", "20429")
    assert len(standin.log) == 0


@pytest.mark.parametrize(("fault", "created"), [("error_5xx_rate", 0), ("accepted_5xx_rate", 1)])
async def test_server_error_is_unknown_whether_or_not_twilio_created_the_message(
    standin: TwilioStandin, adapter: TwilioSmsAdapter, fault: str, created: int
) -> None:
    # The two 500s look the same to the SDK; only the stand-in knows whether the message exists.
    # A retry would duplicate the second, so neither is retryable: both are looked up instead.
    standin.faults.configure(**{fault: 1.0})
    [result] = await adapter.send_batch([sms(1, callback="http://127.0.0.1:9/s")])
    assert (result.ok, result.error_class, result.error_code) == (False, "unknown", "20500")
    assert "may have been created" in (result.error_reason or "")
    assert len(standin.log) == created


async def test_timeout_after_the_request_is_unknown_not_retryable(standin: TwilioStandin) -> None:
    standin.faults.configure(timeout_rate=1.0, hang_s=3.0)
    adapter = TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url, timeout=0.3)
    try:
        [result] = await adapter.send_batch([sms(1, callback="http://127.0.0.1:9/s")])
    finally:
        await adapter.aclose()
    assert (result.ok, result.error_class, result.error_code) == (False, "unknown", "timeout")
    # The stand-in took the message before hanging: the case where a retry would duplicate it.
    assert [e.key for e in standin.log.entries] == [sms(1).touch_key]


async def test_unreachable_provider_is_a_retryable_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = TwilioSmsAdapter("AC" + "1" * 32, "token", FROM, api_base=f"http://127.0.0.1:{port}", timeout=2)
    try:
        [result] = await adapter.send_batch([sms(1)])
    finally:
        await adapter.aclose()
    assert (result.ok, result.error_class, result.error_code) == (False, "retryable", "connect_error")


async def test_wrong_credentials_are_refused_by_the_standin(standin: TwilioStandin) -> None:
    adapter = TwilioSmsAdapter(standin.account_sid, "not-the-token", FROM, api_base=standin.base_url)
    try:
        [result] = await adapter.send_batch([sms(1)])
    finally:
        await adapter.aclose()
    # Our credentials being wrong is for ops to fix; the customer's touch is not failed for it.
    assert (result.ok, result.error_class, result.error_code) == (False, "retryable", "20003")
    assert len(standin.log) == 0


async def test_status_callbacks_arrive_signed_and_validate(standin: TwilioStandin, adapter: TwilioSmsAdapter) -> None:
    standin.delivery_outcomes["+8613800000099"] = ("undelivered", 30003)
    async with WebhookSink() as sink:
        callback = f"{sink.base_url}/webhooks/twilio/status"
        results = await adapter.send_batch([sms(1, callback=callback), sms(2, to="+8613800000099", callback=callback)])
        await drain(standin)

    validator = RequestValidator(standin.auth_token)
    by_sid: dict[str, list[dict[str, str]]] = {}
    for request in sink.on("/webhooks/twilio/status"):
        form = request.form()
        assert validator.validate(request.url, form, request.headers["X-Twilio-Signature"])
        assert not validator.validate(
            request.url, {**form, "MessageStatus": "delivered!"}, request.headers["X-Twilio-Signature"]
        )
        assert form["AccountSid"] == standin.account_sid
        assert form["From"] == FROM
        by_sid.setdefault(form["MessageSid"], []).append(form)
        assert request.query[TOUCH_KEY_PARAM] in {sms(1).touch_key, sms(2).touch_key}

    delivered, undelivered = (by_sid[r.provider_message_id or ""] for r in results)
    assert [f["MessageStatus"] for f in delivered] == ["queued", "sent", "delivered"]
    assert all("ErrorCode" not in f for f in delivered)
    assert [f["MessageStatus"] for f in undelivered] == ["queued", "sent", "undelivered"]
    assert undelivered[-1]["ErrorCode"] == "30003"
    assert undelivered[-1]["To"] == "+8613800000099"


async def test_inbound_sms_is_posted_signed(standin: TwilioStandin) -> None:
    async with WebhookSink() as sink:
        url = f"{sink.base_url}/webhooks/twilio/inbound"
        status = await asyncio.to_thread(standin.run, standin.inject_inbound("+8613800000001", FROM, "TD", url))
    assert status == 200
    [request] = sink.received
    form = request.form()
    assert (form["From"], form["To"], form["Body"]) == ("+8613800000001", FROM, "TD")
    assert re.fullmatch(r"SM[0-9a-f]{32}", form["MessageSid"])
    assert RequestValidator(standin.auth_token).validate(request.url, form, request.headers["X-Twilio-Signature"])


async def test_large_batch_keeps_order_with_mixed_outcomes(standin: TwilioStandin, adapter: TwilioSmsAdapter) -> None:
    standin.faults.configure(error_5xx_rate=0.2, permanent_rate=0.1, seed=7)
    messages = [sms(i) for i in range(300)]
    results = await adapter.send_batch(messages)
    assert [r.touch_key for r in results] == [m.touch_key for m in messages]
    ok = [r for r in results if r.ok]
    assert len(ok) == len(standin.log)
    assert sum(r.error_class == "unknown" for r in results) == standin.faults.drawn["5xx"]
    assert sum(r.error_class == "permanent" for r in results) == standin.faults.drawn["permanent"]


@pytest.mark.parametrize("sender", [{"from_number": FROM}, {"messaging_service_sid": "MG" + "1" * 32}])
@pytest.mark.parametrize("reply", [(201, '{"sid": "SM1", "status": "queued", "price": null}'),
                                   (400, '{"code": 21211, "message": "Invalid To", "more_info": "x", "status": 400}'),
                                   (503, "<html>busy</html>")])
async def test_a_send_is_the_request_the_sdks_create_makes(sender: dict[str, str], reply: tuple[int, str]) -> None:
    """The adapter hands the Messages form to the SDK's HTTP hook itself rather than through ``create_async``:
    the same request arrives (path, headers, credentials, form in the SDK's order), and the same result or
    the same ``TwilioRestException`` comes back."""
    from aiohttp import web
    from twilio.base.exceptions import TwilioRestException

    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.method, request.path_qs, dict(request.headers), await request.read()))
        return web.Response(status=reply[0], text=reply[1], content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    adapter = TwilioSmsAdapter("AC" + "2" * 32, "token", api_base=f"http://127.0.0.1:{port}", **sender)
    message = sms(1, text="您好 & a+b=c", callback="https://cb.example/hooks/twilio/status?x=1")
    try:
        [result] = await adapter.send_batch([message])
        try:
            created = await adapter.client.messages.create_async(
                to=message.to, body=message.content.text, from_=sender.get("from_number", values.unset),
                messaging_service_sid=sender.get("messaging_service_sid", values.unset),
                status_callback=with_touch_key(message.status_callback_url or "", message.touch_key))
            expected: object = (created.sid, created.status)
        except TwilioRestException as exc:
            expected = (exc.status, exc.code, exc.msg, exc.uri, exc.method)
        got: object = None
        try:
            got = await adapter._create(message.to, message.content.text,
                                        with_touch_key(message.status_callback_url or "", message.touch_key))
            got = (got["sid"], got["status"])  # type: ignore[index]
        except TwilioRestException as exc:
            got = (exc.status, exc.code, exc.msg, exc.uri, exc.method)
    finally:
        await adapter.aclose()
        await runner.cleanup()
    mine, sdks = seen[0], seen[2]
    assert mine[:2] == sdks[:2] and mine[3] == sdks[3]
    assert {k: v for k, v in mine[2].items() if k != "Host"} == {k: v for k, v in sdks[2].items() if k != "Host"}
    assert got == expected
    assert result.ok == (reply[0] == 201)
    if reply[0] == 201:
        assert (result.provider_message_id, result.provider_status) == ("SM1", "queued")
    else:
        assert result.error_class == ("permanent" if reply[0] == 400 else "unknown")


async def test_batches_sent_at_once_never_have_more_than_concurrency_requests_in_flight() -> None:
    """Workers of several batches keep a slot each for as long as their batch has messages: still never more
    than ``concurrency`` requests at Twilio at once, every slot used, and every slot given back after."""
    from aiohttp import web

    in_flight, peak, created = 0, 0, 0

    async def create(request: web.Request) -> web.Response:
        nonlocal in_flight, peak, created
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.002)
        in_flight -= 1
        created += 1
        return web.json_response({"sid": f"SM{created}", "status": "queued"}, status=201)

    app = web.Application()
    app.router.add_post("/{tail:.*}", create)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    adapter = TwilioSmsAdapter("AC" + "3" * 32, "token", FROM, api_base=f"http://127.0.0.1:{port}", concurrency=4)
    try:
        batches = await asyncio.gather(*(adapter.send_batch([sms(b * 100 + i) for i in range(30)]) for b in range(3)))
        assert peak == 4
        assert [[r.ok for r in batch] for batch in batches] == [[True] * 30] * 3
        peak = 0
        [alone] = await asyncio.gather(adapter.send_batch([sms(900 + i) for i in range(12)]))
        assert peak == 4 and all(r.ok for r in alone)
        one = await adapter.send_one(sms(999))
        assert (one.ok, one.provider_message_id, adapter._semaphore._value) == (True, "SM103", 4)
    finally:
        await adapter.aclose()
        await runner.cleanup()


async def test_a_worker_run_in_the_callers_own_task_gives_its_slot_back_with_the_batch(
        standin: TwilioStandin, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slots are held per worker task; a sender that runs the messages in the caller's task (which outlives the
    batch) must not keep the slot, or the adapter would run out of slots batch after batch."""
    import channels.sms_twilio as sms_module

    async def inline(messages: list[OutboundMessage], send: Any, concurrency: int) -> list[Any]:
        return [await send(m) for m in messages]

    monkeypatch.setattr(sms_module, "run_bounded", inline)
    adapter = TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url,
                               concurrency=2)
    try:
        for batch in range(3):
            results = await adapter.send_batch([sms(batch * 10 + i) for i in range(3)])
            assert all(r.ok for r in results)
            assert adapter._semaphore._value == 2
    finally:
        await adapter.aclose()
