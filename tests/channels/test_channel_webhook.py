"""Outbound webhook calls (channels.webhook) against the receiving stand-in, which checks the
signature and deduplicates on the idempotency key independently of the sender."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.base import OutboundMessage, RenderedMessage
from channels.webhook import Endpoint, WebhookAdapter, endpoints_from_env, sign
from channels.webhook_targets import WebhookConfigError
from engine.language.webhook_config import load_webhooks
from standins.webhook_receiver import WebhookReceiverStandin
from tests.standin_support import serving

SECRET = "s3cret-for-tests"


def call(i: int, target: str = "crm", body: dict[str, object] | None = None) -> OutboundMessage:
    payload = json.dumps(body or {"type": "case.open", "customer_id": f"C{i:05d}", "note": "理赔 \"急\""},
                         ensure_ascii=False)
    content = RenderedMessage(channel="webhook", template="crm_case_opened", locale="zh-CN", text=payload)
    return OutboundMessage(i, f"{i}:claim-crm-case:open_case:ev-{i}", target, content, "service")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiverStandin]:
    yield from serving(WebhookReceiverStandin(SECRET))


@pytest.fixture
async def adapter(receiver: WebhookReceiverStandin) -> AsyncIterator[WebhookAdapter]:
    async with aclosing(WebhookAdapter({"crm": Endpoint(receiver.url, SECRET.encode())}, timeout=2)) as hooks:
        yield hooks


async def test_a_signed_call_is_taken_once_with_its_body(receiver: WebhookReceiverStandin,
                                                         adapter: WebhookAdapter) -> None:
    [result] = await adapter.send_batch([call(1)])
    assert result.ok and result.provider_status == "201"
    [taken] = receiver.log.entries
    assert taken.key == call(1).touch_key and taken.detail["note"] == "理赔 \"急\""
    assert receiver.counts["bad_signature"] == 0


async def test_a_retry_with_the_same_key_is_not_taken_twice(receiver: WebhookReceiverStandin,
                                                            adapter: WebhookAdapter) -> None:
    receiver.faults.configure(accepted_5xx_rate=1.0)  # taken, then a server error: the sender cannot know
    [first] = await adapter.send_batch([call(1)])
    # Safe to retry because of the idempotency key: retryable, not unknown as for a message to a person.
    assert (first.ok, first.error_class, first.error_code) == (False, "retryable", "http:503")
    receiver.faults.configure(accepted_5xx_rate=0.0)
    [again] = await adapter.send_batch([call(1)])
    assert again.ok and receiver.counts["replayed"] == 1
    assert len(receiver.log) == 1 and not receiver.log.duplicates()


@pytest.mark.parametrize(("fault", "error_class"), [("error_5xx_rate", "retryable"), ("rate_429", "retryable"),
                                                    ("permanent_rate", "permanent")])
async def test_failures_are_retryable_unless_the_receiver_refuses_the_call(
        receiver: WebhookReceiverStandin, adapter: WebhookAdapter, fault: str, error_class: str) -> None:
    receiver.faults.configure(**{fault: 1.0})
    [result] = await adapter.send_batch([call(1)])
    assert (result.ok, result.error_class) == (False, error_class)


async def test_a_wrong_secret_or_an_old_timestamp_is_refused(receiver: WebhookReceiverStandin) -> None:
    async with aclosing(WebhookAdapter({"crm": Endpoint(receiver.url, b"not-the-secret")})) as hooks:
        [result] = await hooks.send_batch([call(1)])
    assert (result.ok, result.error_class, result.error_code) == (False, "permanent", "http:401")
    body = b'{"type":"case.open"}'
    stale = sign(SECRET.encode(), body, int(time.time()) - 3600)
    async with httpx.AsyncClient() as client:
        replayed = await client.post(receiver.url, content=body, headers={"X-Journeys-Signature": stale})
        fresh = await client.post(receiver.url, content=body,
                                  headers={"X-Journeys-Signature": sign(SECRET.encode(), body, int(time.time()))})
        tampered = await client.post(receiver.url, content=body + b" ",
                                     headers={"X-Journeys-Signature": sign(SECRET.encode(), body, int(time.time()))})
    assert (replayed.status_code, fresh.status_code, tampered.status_code) == (401, 201, 401)
    assert receiver.counts["bad_signature"] == 3


async def test_an_unconfigured_target_waits_for_its_configuration(adapter: WebhookAdapter) -> None:
    [result] = await adapter.send_batch([call(1, target="erp")])
    assert (result.ok, result.error_class, result.error_code) == (False, "retryable", "not_configured")


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=20) | st.integers(), max_size=5),
       st.integers(min_value=1_600_000_000, max_value=2_000_000_000))
def test_a_signature_covers_body_and_time(body: dict[str, object], stamp: int) -> None:
    raw = json.dumps(body).encode()
    header = sign(SECRET.encode(), raw, stamp)
    assert header.startswith(f"t={stamp},v1=") and len(header.split("v1=")[1]) == 64
    assert sign(SECRET.encode(), raw + b"x", stamp) != header and sign(SECRET.encode(), raw, stamp + 1) != header


def test_targets_come_from_the_file_and_their_secrets_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "webhooks.yaml"
    path.write_text("targets:\n  crm: {url_env: CRM_URL, secret_env: CRM_SECRET}\n  erp: {url_env: ERP_URL, "
                    "secret_env: ERP_SECRET}\n", encoding="utf-8")
    config = load_webhooks(path)
    endpoints = endpoints_from_env(config, {"CRM_URL": "http://127.0.0.1:1/c", "CRM_SECRET": "x", "ERP_URL": "u"})
    assert list(endpoints) == ["crm"] and endpoints["crm"].secret == b"x"
    path.write_text("targets:\n  crm: {url_env: crm_url, secret_env: CRM_SECRET}\n", encoding="utf-8")
    with pytest.raises(WebhookConfigError, match=r"webhooks.yaml:2:\d+: .*targets.crm.url_env|webhooks.yaml:2:\d+:"):
        load_webhooks(path)
    path.write_text("targets:\n  crm: {url_env: 'A\n", encoding="utf-8")
    with pytest.raises(WebhookConfigError, match=r"webhooks.yaml:\d+:"):
        load_webhooks(path)
    assert load_webhooks(tmp_path / "missing.yaml").targets == {}
