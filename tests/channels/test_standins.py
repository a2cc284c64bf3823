"""The stand-ins themselves: protocol details a real client relies on, faults, logs, process mode;
plus the outbox adapter and building adapters from the environment."""

from __future__ import annotations

import base64
import json
import smtplib
import subprocess
from pathlib import Path

import aiohttp
import pytest

from channels.base import OutboundMessage, RenderedMessage
from channels.email_smtp import SmtpEmailAdapter
from channels.outbox import OutboxAdapter
from channels.registry import ChannelNotConfigured, build_adapter, build_adapters
from channels.sms_twilio import TwilioSmsAdapter
from channels.wechat import WeChatTemplateAdapter
from standins.faults import Accepted, AcceptedLog, FaultPlan, Faults
from standins.server import ProcessStandin
from standins.smtp_server import SmtpStandin
from standins.twilio_api import TwilioStandin, num_segments
from standins.wechat_api import WeChatStandin

ROOT = Path(__file__).resolve().parents[2]


def test_faults_are_reproducible_from_the_seed() -> None:
    plan = FaultPlan(timeout_rate=0.1, error_5xx_rate=0.2, rate_429=0.1, permanent_rate=0.1, seed=42)
    first = Faults(FaultPlan(**vars(plan)))
    second = Faults(FaultPlan(**vars(plan)))
    draws = [first.draw() for _ in range(2000)]
    assert draws == [second.draw() for _ in range(2000)]
    assert set(draws) == {None, "timeout", "5xx", "429", "permanent"}
    assert 300 <= draws.count("5xx") <= 500  # 20% of 2000, loosely
    assert Faults().draw() is None
    with pytest.raises(TypeError):
        first.configure(nonsense=1)


def test_accepted_log_counts_duplicates() -> None:
    log = AcceptedLog()
    for sid, key in [("a", "k1"), ("b", "k2"), ("c", "k1"), ("d", None)]:
        log.add(Accepted(sid, "+8613800000000", key))
    assert log.duplicates() == {"k1": 2}
    assert log.summary() == {"accepted": 4, "duplicates": {"k1": 2}}


def test_segments_follow_gsm7_and_ucs2() -> None:
    assert num_segments("a" * 160) == 1
    assert num_segments("a" * 161) == 2
    assert num_segments("您" * 70) == 1
    assert num_segments("您" * 71) == 2


async def test_twilio_standin_speaks_the_messages_api() -> None:
    with TwilioStandin(callbacks=False) as standin:
        assert isinstance(standin, TwilioStandin)
        url = f"{standin.base_url}/2010-04-01/Accounts/{standin.account_sid}/Messages.json"
        form = {"To": "+8613800000000", "From": "+15005550006", "Body": "hi"}
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=form) as resp:
                assert resp.status == 401
                assert (await resp.json())["code"] == 20003
            credentials = base64.b64encode(f"{standin.account_sid}:{standin.auth_token}".encode()).decode()
            auth = {"Authorization": f"Basic {credentials}"}
            async with session.post(url, data=form, headers=auth) as resp:
                assert resp.status == 201
                body = await resp.json()
            async with session.post(url, data={**form, "Body": ""}, headers=auth) as resp:
                assert (resp.status, (await resp.json())["code"]) == (400, 21602)
        assert body["status"] == "queued"
        assert body["sid"].startswith("SM") and len(body["sid"]) == 34
        assert body["uri"] == f"/2010-04-01/Accounts/{standin.account_sid}/Messages/{body['sid']}.json"
        assert body["num_segments"] == "1"


async def test_wechat_standin_token_endpoint() -> None:
    with WeChatStandin(token_ttl=60) as standin:
        assert isinstance(standin, WeChatStandin)
        async with aiohttp.ClientSession() as session:
            params = {"grant_type": "client_credential", "appid": standin.appid, "secret": standin.secret}
            async with session.get(f"{standin.base_url}/cgi-bin/token", params=params) as resp:
                token = await resp.json()
            async with session.get(f"{standin.base_url}/cgi-bin/token", params={**params, "appid": "x"}) as resp:
                wrong = await resp.json(content_type=None)
            send = f"{standin.base_url}/cgi-bin/message/template/send"
            async with session.post(send, json={"touser": "o1", "template_id": "t"}) as resp:
                missing = await resp.json(content_type=None)
        assert token["expires_in"] == 60 and len(token["access_token"]) > 32
        assert wrong["errcode"] == 40013
        assert missing["errcode"] == 41001


async def test_process_mode_standin_is_controlled_over_http() -> None:
    standin = ProcessStandin("twilio", callbacks=False).start()
    try:
        adapter = TwilioSmsAdapter("AC" + "0" * 32, "standin-auth-token", "+15005550006", api_base=standin.base_url)
        content = RenderedMessage("sms", "t", "en", text="hello")
        messages = [
            OutboundMessage(i, f"k{i}", "+8613800000000", content, status_callback_url="http://x/cb") for i in range(3)
        ]
        await standin.configure_faults(permanent_rate=1.0)
        [refused] = await adapter.send_batch(messages[:1])
        await standin.configure_faults(permanent_rate=0.0)
        results = await adapter.send_batch(messages)
        await adapter.send_batch(messages[:1])  # the same touch again: a duplicate
        await adapter.aclose()
        summary = await standin.summary()
    finally:
        standin.stop()
    assert refused.error_class == "permanent"
    assert all(r.ok for r in results)
    assert summary["accepted"] == 4
    assert summary["duplicates"] == {"k0": 2}
    assert summary["faults"] == {"permanent": 1}


def test_smtp_standin_generates_its_certificate_at_runtime() -> None:
    with SmtpStandin(starttls=True) as standin:
        assert standin.cert_pem is not None and b"BEGIN CERTIFICATE" in standin.cert_pem
        with smtplib.SMTP(standin.host, standin.port, timeout=5) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.starttls(context=standin.client_tls_context())
            client.ehlo()
    # No key material is ever written into the repository's files: runtime files (the demo's
    # stand-in certificate under var/) are ignored by git, so only tracked or addable files count.
    if (ROOT / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.pem", "*.key"],
                                cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    else:  # an exported tree: every file but the virtualenv and the runtime folder
        listed = [str(p) for pattern in ("*.pem", "*.key") for p in ROOT.rglob(pattern)
                  if not {".venv", "var"} & set(p.relative_to(ROOT).parts)]
    assert listed == []


async def test_outbox_writes_masked_json_lines(tmp_path: Path) -> None:
    outbox = OutboxAdapter(tmp_path / "sms.jsonl", "sms")
    content = RenderedMessage("sms", "renewal", "zh-CN", text="续保提醒", segments=1)
    results = await outbox.send_batch([OutboundMessage(7, "c7:renewal:s1:w48", "+8613812345678", content)])
    assert results[0].ok and results[0].provider_message_id
    [line] = (tmp_path / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert record["to"] == "138****5678"
    assert record["touch_key"] == "c7:renewal:s1:w48"
    assert record["content"]["text"] == "续保提醒"


async def test_registry_builds_adapters_from_env(tmp_path: Path) -> None:
    env = {
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "t",
        "TWILIO_FROM": "+15005550006",
        "TWILIO_API_BASE": "http://127.0.0.1:1",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "2525",
        "SMTP_STARTTLS": "false",
        "EMAIL_FROM": "service@insurer.example.com",
    }
    adapters = build_adapters(env, outbox_dir=tmp_path)
    try:
        assert isinstance(adapters["sms"], TwilioSmsAdapter)
        assert adapters["sms"].client.api.base_url == "http://127.0.0.1:1"
        assert isinstance(adapters["email"], SmtpEmailAdapter)
        assert adapters["email"].settings.port == 2525 and not adapters["email"].settings.starttls
        assert isinstance(adapters["wechat"], OutboxAdapter)  # no WECHAT_* set
    finally:
        for adapter in adapters.values():
            await adapter.aclose()
    with pytest.raises(ChannelNotConfigured, match="WECHAT_APPID"):
        build_adapter("wechat", {})
    wechat = build_adapter("wechat", {"WECHAT_APPID": "wx1", "WECHAT_SECRET": "s", "WECHAT_API_BASE": "http://h:1"})
    assert isinstance(wechat, WeChatTemplateAdapter)
    await wechat.aclose()
