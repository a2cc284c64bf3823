"""``store.touch_reasons`` reads every reason a writer of this product stores on a touch back as its
code and parameters, and a page words each in Chinese and English from those, never by showing the
English. The texts here come from the writers themselves (dispatch's checks before a send, the consent
reroute, the delivery rules' caps), not copied, so a writer that changes its words fails here.
"""

from __future__ import annotations

import asyncio
import re
import socket
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.base import OutboundMessage, RenderedMessage
from channels.optout import OPTED_OUT_REASON
from channels.routing import reroute_without_consent
from channels.webhook import Endpoint, WebhookAdapter
from console.i18n import Translator
from engine.language.journey_edits import Edition
from engine.sending.channel_stop import stop_for
from engine.sending.claiming import ClaimedTouch
from engine.sending.journey_rules import JourneyRules
from engine.sending.sendable import unsendable
from standins.webhook_receiver import WebhookReceiverStandin
from store.models import Customer
from store.touch_reasons import ANONYMISED, parse
from tests.console.test_explain_reasons import planner_reasons, sending_reasons

# Words a Chinese page must not show: English words, codes, durations as typed, ISO dates.
LATIN = re.compile(r"[A-Za-z_]{2,}|\d+[wdhm]\b|\d{4}-\d{2}-\d{2}")


def _touch(channel: str, category: str = "service") -> ClaimedTouch:
    return ClaimedTouch(1, "k", 1, "renewal-reminder", "s1", "o", category, False, channel, [], "t", 1,
                        datetime(2027, 1, 1, tzinfo=UTC), journey_version="v1",
                        planned_for=datetime(2027, 1, 1, tzinfo=UTC))


def _customer(**fields: Any) -> Customer:
    base: dict[str, Any] = {"external_id": "C1", "name": "n", "tier": "gold", "phone": "+8613800000000",
                               "email": "a@example.com", "consent_sms": True, "consent_email": True}
    return Customer(**{**base, **fields})


RULES = JourneyRules()  # every journey runs


def dispatch_reasons() -> list[tuple[str, str]]:
    """(expected code, text) of each check dispatch makes before a send, as it words them now."""
    out: list[tuple[str, str]] = []
    removed = unsendable(_touch("sms"), None, {}, RULES)
    unknown = unsendable(_touch("fax"), _customer(), {}, RULES)
    hook = unsendable(_touch("webhook"), _customer(), {}, RULES)
    no_consent = unsendable(_touch("sms"), _customer(consent_sms=False), {}, RULES)
    no_marketing = unsendable(_touch("sms", "marketing"), _customer(consent_sms_marketing=False), {}, RULES)
    no_address = unsendable(_touch("email"), _customer(email=None), {}, RULES)
    switched_off = unsendable(_touch("sms"), _customer(), {}, JourneyRules(stopped=frozenset({"renewal-reminder"})))
    gone = unsendable(_touch("sms"), _customer(), {}, JourneyRules(retired=frozenset({"renewal-reminder"})))
    edited = unsendable(_touch("sms"), _customer(), {}, JourneyRules(editions={"renewal-reminder": Edition(
        "v2", datetime(2026, 12, 1, tzinfo=UTC))}))
    for code, result in (("journey_gone", gone), ("journey_edited", edited),
                         ("no_customer", removed), ("unknown_channel", unknown), ("no_target", hook),
                         ("lost_channel", no_consent), ("lost_channel", no_marketing), ("no_address", no_address),
                         ("journey_off", switched_off)):
        assert result is not None and result.error_reason, code
        out.append((code, result.error_reason))
    return out


def reroute_reasons() -> list[tuple[str, str]]:
    """(expected code, text) of each reroute after a channel is lost, from dispatch's and an opt-out's words."""
    out: list[tuple[str, str]] = []
    for why in ("no consent for sms", "no marketing consent for sms", f"{OPTED_OUT_REASON} of sms",
                f"{OPTED_OUT_REASON} of marketing on sms"):
        out.append(("not_moved", reroute_without_consent("marketing", "sms", ["email"], lambda c: True, why).reason))
        out.append(("no_other_channel",
                    reroute_without_consent("service", "sms", ["email", "wechat"], lambda c: False, why).reason))
        out.append(("no_other_channel", reroute_without_consent("service", "sms", [], lambda c: False, why).reason))
        out.append(("moved", reroute_without_consent("service", "sms", ["email"], lambda c: True, why).reason))
    return out


def webhook_reasons() -> list[tuple[str, str]]:
    """(expected code, text) of a webhook step's failed calls, from the adapter itself against the receiving
    stand-in: a server error, a target this server has no address for, a receiver that cannot be reached."""
    async def calls() -> list[tuple[str, str | None]]:
        message = OutboundMessage(1, "k", "crm", RenderedMessage(channel="webhook", template="t", locale="zh-CN",
                                                                 text="{}"), "service")
        with WebhookReceiverStandin("secret") as receiver:
            receiver.faults.configure(error_5xx_rate=1.0)
            with socket.socket() as probe:  # a port nothing listens on
                probe.bind(("127.0.0.1", 0))
                closed = f"http://127.0.0.1:{probe.getsockname()[1]}/"
            async with aclosing(WebhookAdapter({"crm": Endpoint(receiver.url, b"secret")}, timeout=2)) as up, \
                    aclosing(WebhookAdapter({"crm": Endpoint(closed, b"secret")}, timeout=2)) as down, \
                    aclosing(WebhookAdapter({}, timeout=2)) as none:
                return [("system_status", (await up.send_one(message)).error_reason),
                        ("system_unreachable", (await down.send_one(message)).error_reason),
                        ("system_unconfigured", (await none.send_one(message)).error_reason)]

    out = asyncio.run(calls())
    assert all(text for _, text in out), out
    return [(code, text or "") for code, text in out]


OTHER_REASONS = [
    ("anonymised", ANONYMISED),
    # Dispatch's words for a send the provider did not confirm, while the provider is asked.
    ("unconfirmed", "unconfirmed, to be looked up: 30008: Unknown error"),
    ("render", "render: template 'renewal' line 3: 'policy' is undefined"),
    ("delivery_unknown", "delivery unknown: ReadTimeout: timed out"),
    # A channel stopped by the account's refusal, in its writer's words (engine.sending.channel_stop).
    *((code, stop.reason) for code, errcode in (("stopped_quota", "45009"), ("stopped_ip", "token:40164"),
                                                ("stopped_unauthorized", "48001"))
      if (stop := stop_for("wechat", errcode, datetime(2027, 1, 1, tzinfo=UTC))) is not None),
]


def test_every_reason_a_writer_stores_parses_to_its_code(monkeypatch: pytest.MonkeyPatch) -> None:
    reasons = dispatch_reasons() + reroute_reasons() + webhook_reasons() + OTHER_REASONS
    reasons += [(rule, text) for rule, text in planner_reasons() + sending_reasons(monkeypatch)
                if text.startswith(f"{rule}: ")]
    assert len(reasons) >= 30
    for code, text in reasons:
        reason = parse(text)
        assert reason is not None and reason.code == code, (code, text, reason)


def test_a_reroute_keeps_how_the_channel_was_lost() -> None:
    reason = parse(reroute_without_consent("service", "sms", ["wechat", "email"], lambda c: c == "email",
                                           f"{OPTED_OUT_REASON} of marketing on sms").reason)
    assert reason is not None
    assert reason.params == {"opted_out": True, "marketing": True, "lost_channel": "sms", "channel": "email"}
    none = parse(reroute_without_consent("service", "sms", [], lambda c: False, "no consent for sms").reason)
    assert none is not None and none.params["channels"] == []


def test_chinese_and_english_pages_word_every_stored_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    zh, en = Translator("zh-CN"), Translator("en")
    reasons = dispatch_reasons() + reroute_reasons() + webhook_reasons()
    reasons += [(c, t) for c, t in OTHER_REASONS if c == "anonymised"]
    reasons += [(rule, text) for rule, text in planner_reasons() + sending_reasons(monkeypatch)
                if text.startswith(f"{rule}: ")]
    for code, text in reasons:
        shown = zh.touch_reason(text, journey_name=lambda j: "续保提醒")
        # A channel this product does not know has no word but its own code; a failed call keeps its exception's.
        assert shown and shown != text, (text, shown)
        assert code in ("unknown_channel", "system_unreachable") or not LATIN.search(shown), (text, shown)
        assert en.touch_reason(text, journey_name=lambda j: j) not in ("", text), text
    # A webhook's target by its words in config/webhooks.yaml; an exception's or a status's code kept beside them.
    hooks = {code: zh.touch_reason(t) for code, t in webhook_reasons()}
    assert hooks["system_status"] == "外部系统“客户关系管理系统：开立服务工单”返回状态码 503"
    assert re.fullmatch(r"无法连接外部系统“客户关系管理系统：开立服务工单”（Connect\w+）", hooks["system_unreachable"])
    assert hooks["system_unconfigured"] == "本服务器未配置外部系统“客户关系管理系统：开立服务工单”的地址和密钥"
    words = {zh.touch_reason(t) for _, t in reroute_reasons()}
    assert "已退订短信营销信息；已改用邮件" in words, words
    assert "未同意接收短信；营销类触达不转到其他渠道" in words, words


def test_a_detail_or_a_providers_message_is_kept_as_stored() -> None:
    zh = Translator("zh-CN")
    assert zh.touch_reason("render: 'policy' is undefined") == "模板无法渲染：'policy' is undefined"
    assert zh.touch_reason("21610: Attempt to send to unsubscribed recipient") == \
        "21610: Attempt to send to unsubscribed recipient"
    assert zh.touch_reason(None) == zh.touch_reason("") == ""


@given(st.text(max_size=300))
def test_any_stored_text_is_read_and_worded_without_error(text: str) -> None:
    reason = parse(text)
    assert (reason is None) == (text == "")
    for locale in ("zh-CN", "en"):
        shown = Translator(locale).touch_reason(text)
        assert (shown == "") == (text == "")
