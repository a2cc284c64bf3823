"""Inbound replies through the real webhook app: opt-out at once, NPS answers once, replies, unsubscribe links."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import select

from channels.optout import COURTESY_WORDS, StoredEvent, is_opt_out, unsubscribe_url
from engine.sending.dispatch import Dispatcher
from store.clock import utcnow
from store.db import make_engine, session_scope
from store.models import Customer, Event, Outcome, SurveyAnswer, Touch, TouchStatus
from tests.db_support import inserted, stored, stored_rows
from tests.dispatch_support import HttpAdapter, PlainRenderer, RecordingProvider
from tests.loop import test_receipts as receipts
from tests.loop.test_receipts import (
    OPENID,
    PHONE,
    make_customer,
    make_touch,
    outcomes,
    post_twilio,
    touch_row,
    wechat_query,
    wechat_xml,
)

# The webhook app, signing secrets and listener capture are test_receipts' fixtures.
client = receipts.client
heard = receipts.heard
secrets = receipts.secrets


def customer_row(url: str, customer_id: int) -> Customer:
    return stored(url, Customer, customer_id)


def events(url: str, type_: str | None = None) -> list[Event]:
    return stored_rows(url, Event, type=type_)


async def sms_in(client: httpx.AsyncClient, body: str, sid: str, sender: str = PHONE) -> httpx.Response:
    return await post_twilio(client, "/hooks/twilio/inbound", {"From": sender, "To": "+8610690000", "Body": body,
                                                               "MessageSid": sid, "AccountSid": "ACtest"})


@pytest.mark.parametrize("text", ["TD", " td ", "退订", "STOP", "Unsubscribe", "ＴＤ", "退订。", "stop!",
                                  # Spaced, bracketed, quoted, with an emoji or an invisible character pasted in:
                                  "T D", "退 订", "Ｔ\u3000Ｄ", "【退订】", "“TD”", "«STOP»", "-TD-", "退订🙏",
                                  "\u200bTD", "TD\u200d", "(unsubscribe)", "#退订#",
                                  # Keywords only, one after another (the footer says 回复TD退订):
                                  "TD退订", "退订 TD", "TD TD", "STOP, unsubscribe"])
def test_opt_out_keywords(text: str) -> None:
    assert is_opt_out(text, ["TD", "退订", "STOP", "unsubscribe"])


@pytest.mark.parametrize("text", [
    # A request wrapped in courtesy asks for nothing else, and a carrier would take it as one:
    "退订 谢谢", "退订，谢谢！", "请退订", "我要退订", "麻烦帮我退订，谢谢", "您好，退订", "退订了", "TD please",
    "STOP please, thank you", "unsubscribe me", "Please unsubscribe me. Thanks", "ＴＤ　谢谢您"])
def test_keyword_in_courtesy_is_opt_out(text: str) -> None:
    assert is_opt_out(text, ["TD", "退订", "STOP", "unsubscribe"])


@pytest.mark.parametrize("text", ["不要退订", "STOPPED", "", "  ", "不要 退订", "🙏", "TD1", "TDX", "STD",
                                  # A negation, a question or any other word makes it a sentence for an agent:
                                  "请不要退订", "不要退订，谢谢", "TD是什么", "怎么退订", "don't stop",
                                  "please don't STOP", "STOP calling my mother", "谢谢", "please", "谢谢 STOPPED",
                                  # Words that build each other, then one that fits none: a regular expression of
                                  # the alternations backtracked on it for minutes (2^40 ways to split it).
                                  "我要" * 40 + "不", "please" * 30 + "x",
                                  # Longer than any request to stop, made of its words or not.
                                  "谢谢" * 100 + "退订"])
def test_not_opt_out(text: str) -> None:
    assert not is_opt_out(text, ["TD", "退订", "STOP", "unsubscribe"])


_SEPARATORS = st.sampled_from(["", " ", "，", ",", "。", "! ", "\u3000", "~"])


@given(before=st.lists(st.sampled_from(COURTESY_WORDS), max_size=3),
       keywords=st.lists(st.sampled_from(["TD", "退订", "STOP", "unsubscribe", "ＴＤ", "td"]), min_size=1, max_size=2),
       after=st.lists(st.sampled_from(COURTESY_WORDS), max_size=3), sep=_SEPARATORS)
def test_any_courtesy_around_keywords_is_opt_out(before: list[str], keywords: list[str], after: list[str],
                                                 sep: str) -> None:
    assert is_opt_out(sep.join([*before, *keywords, *after]), ["TD", "退订", "STOP", "unsubscribe"])


@given(before=st.lists(st.sampled_from(COURTESY_WORDS), max_size=2),
       negation=st.sampled_from(["不要", "别", "不", "don't", "not", "never", "是什么", "怎么", "为什么", "吗"]),
       keyword=st.sampled_from(["TD", "退订", "STOP", "unsubscribe"]),
       after=st.lists(st.sampled_from(COURTESY_WORDS), max_size=2), sep=_SEPARATORS)
def test_a_negation_or_question_is_never_opt_out(before: list[str], negation: str, keyword: str,
                                                 after: list[str], sep: str) -> None:
    assert not is_opt_out(sep.join([*before, negation, keyword, *after]), ["TD", "退订", "STOP", "unsubscribe"])


async def test_sms_opt_out_flips_consent_and_cancels_planned_sms_only(
        db_url: str, client: httpx.AsyncClient, heard: list[StoredEvent]) -> None:
    customer = make_customer(db_url)
    other = make_customer(db_url, "C-2", phone="+8613900001111", openid="oOther")
    next_sms = make_touch(db_url, customer, "next-sms", status=TouchStatus.PLANNED)
    next_wechat = make_touch(db_url, customer, "next-wx", channel="wechat", status=TouchStatus.PLANNED)
    # Sent long ago: the reply answers no recent message, so it withdraws the channel (a reply to a
    # recent marketing message withdraws marketing only: tests/channels/test_consent_by_purpose.py).
    already_sent = make_touch(db_url, customer, "sent-sms", provider_message_id="SMold", sent_ago=timedelta(days=40))
    someone_else = make_touch(db_url, other, "other-sms", status=TouchStatus.PLANNED)

    response = await sms_in(client, " td ", "SMin1")
    assert response.status_code == 200 and "<Response>" in response.text

    row = customer_row(db_url, customer)
    assert (row.consent_sms, row.consent_sms_source) == (False, "reply:sms")
    assert row.consent_sms_at is not None and row.consent_wechat is True and row.consent_email is True
    cancelled = touch_row(db_url, next_sms)  # a marketing touch: cancelled, not moved to WeChat
    assert (cancelled.status, cancelled.error_reason) == (
        TouchStatus.CANCELLED, "opted out of sms: a marketing touch is not moved to another channel")
    assert touch_row(db_url, next_wechat).status == TouchStatus.PLANNED
    assert touch_row(db_url, already_sent).status == TouchStatus.SENT
    assert touch_row(db_url, someone_else).status == TouchStatus.PLANNED
    assert customer_row(db_url, other).consent_sms is True

    assert [(o.customer_id, o.channel) for o in outcomes(db_url, "opted_out")] == [(customer, "sms")]
    opted = events(db_url, "message.opted_out")
    assert [(e.customer_id, e.data["channel"]) for e in opted] == [(customer, "sms")]
    assert [(e.type, e.customer_id) for e in heard] == [("message.opted_out", customer)]

    # Twilio repeating the webhook changes nothing.
    assert (await sms_in(client, " td ", "SMin1")).status_code == 200
    assert len(outcomes(db_url, "opted_out")) == 1 and len(events(db_url)) == 1 and len(heard) == 1


@pytest.mark.parametrize("body, opted", [("退订，谢谢", True), ("STOP please", True), ("不要退订，谢谢", False)])
async def test_a_courteous_sms_reply_opts_out_and_a_negation_does_not(
        db_url: str, client: httpx.AsyncClient, body: str, opted: bool) -> None:
    customer = make_customer(db_url)
    planned = make_touch(db_url, customer, "next-sms", status=TouchStatus.PLANNED)
    assert (await sms_in(client, body, "SMpolite")).status_code == 200
    assert customer_row(db_url, customer).consent_sms is (not opted)
    assert touch_row(db_url, planned).status == (TouchStatus.CANCELLED if opted else TouchStatus.PLANNED)
    assert len(outcomes(db_url, "opted_out")) == int(opted)


async def test_wechat_opt_out_is_for_wechat_only(db_url: str, client: httpx.AsyncClient) -> None:
    customer = make_customer(db_url)
    sms_touch = make_touch(db_url, customer, "sms", status=TouchStatus.PLANNED)
    wx_touch = make_touch(db_url, customer, "wx", channel="wechat", status=TouchStatus.PLANNED)
    body = wechat_xml(FromUserName=OPENID, CreateTime="1764000000", MsgType="text", Content="退订",
                      MsgId="6100000000000000001")
    response = await client.post(f"/hooks/wechat?{wechat_query()}", content=body)
    assert (response.status_code, response.text) == (200, "success")
    row = customer_row(db_url, customer)
    assert (row.consent_wechat, row.consent_wechat_source, row.consent_sms) == (False, "reply:wechat", True)
    assert touch_row(db_url, wx_touch).status == TouchStatus.CANCELLED
    assert touch_row(db_url, sms_touch).status == TouchStatus.PLANNED


@pytest.mark.parametrize("text", ["T D", "【退订】", "\u200b退订"])
async def test_a_keyword_spaced_or_bracketed_opts_out_through_both_webhooks(
        db_url: str, client: httpx.AsyncClient, text: str) -> None:
    """Only a keyword with nothing but trailing punctuation after it was one: a customer's "T D", "【退订】" or
    a zero-width space pasted before 退订 was kept as a reply, and the customer went on receiving."""
    customer = make_customer(db_url)
    assert (await sms_in(client, text, "SMspaced1")).status_code == 200
    body = wechat_xml(FromUserName=OPENID, CreateTime="1764000000", MsgType="text", Content=text,
                      MsgId="6100000000000000009")
    assert (await client.post(f"/hooks/wechat?{wechat_query()}", content=body)).text == "success"
    row = customer_row(db_url, customer)
    assert (row.consent_sms, row.consent_wechat) == (False, False)
    assert sorted(o.channel for o in outcomes(db_url, "opted_out")) == ["sms", "wechat"]
    assert outcomes(db_url, "replied") == []


async def test_twilio_advanced_opt_out_stops_the_whole_channel_whatever_the_words(
        db_url: str, client: httpx.AsyncClient) -> None:
    """Twilio's Advanced Opt-Out has keywords of its own (a messaging service may add "ARRET", "BAJA"):
    when it says OptOutType=STOP it has blocked the number, so nothing more goes by SMS, marketing or
    not. The opt-out had been missed when the words were not ours, and taken as marketing-only when the
    last message was marketing; our TwiML confirmation would be refused by Twilio, which sent its own."""
    customer = make_customer(db_url)
    make_touch(db_url, customer, "recent-marketing", provider_message_id="SMrecent")
    planned = make_touch(db_url, customer, "planned", status=TouchStatus.PLANNED)

    form = {"From": PHONE, "To": "+8610690000", "Body": "ARRET", "MessageSid": "SMblocked", "AccountSid": "ACtest",
            "OptOutType": "STOP"}
    response = await post_twilio(client, "/hooks/twilio/inbound", form)
    assert response.status_code == 200 and "<Message>" not in response.text

    row = customer_row(db_url, customer)
    assert (row.consent_sms, row.consent_sms_source, row.consent_wechat) == (False, "reply:sms", True)
    assert [o.detail.get("purpose") for o in outcomes(db_url, "opted_out")] == ["all"]
    assert touch_row(db_url, planned).status == TouchStatus.CANCELLED
    assert outcomes(db_url, "replied") == []

    # Twilio repeating the webhook changes nothing.
    assert "<Message>" not in (await post_twilio(client, "/hooks/twilio/inbound", form)).text
    assert len(outcomes(db_url, "opted_out")) == 1


@pytest.mark.parametrize("opt_out_type", ["HELP", "START"])
async def test_twilio_help_and_start_keywords_are_replies(
        db_url: str, client: httpx.AsyncClient, opt_out_type: str) -> None:
    customer = make_customer(db_url)
    form = {"From": PHONE, "To": "+8610690000", "Body": opt_out_type, "MessageSid": f"SM{opt_out_type}",
            "AccountSid": "ACtest", "OptOutType": opt_out_type}
    assert (await post_twilio(client, "/hooks/twilio/inbound", form)).status_code == 200
    assert customer_row(db_url, customer).consent_sms is True
    assert outcomes(db_url, "opted_out") == [] and len(outcomes(db_url, "replied")) == 1


async def test_unfollowing_the_official_account_ends_wechat_consent(db_url: str, client: httpx.AsyncClient) -> None:
    customer = make_customer(db_url)
    body = wechat_xml(FromUserName=OPENID, CreateTime="1764000000", MsgType="event", Event="unsubscribe")
    assert (await client.post(f"/hooks/wechat?{wechat_query()}", content=body)).status_code == 200
    assert (await client.post(f"/hooks/wechat?{wechat_query()}", content=body)).status_code == 200
    row = customer_row(db_url, customer)
    assert (row.consent_wechat, row.consent_wechat_source) == (False, "wechat:unsubscribe")
    assert len(outcomes(db_url, "opted_out")) == 1


async def test_nps_digit_reply_records_one_answer(db_url: str, client: httpx.AsyncClient,
                                                  heard: list[StoredEvent]) -> None:
    customer = make_customer(db_url)
    survey = make_touch(db_url, customer, "nps", template="nps_monthly_survey", status=TouchStatus.DELIVERED,
                        provider_message_id="SMsurvey", sent_ago=timedelta(hours=3))
    make_touch(db_url, customer, "old-survey", template="nps_monthly_survey", provider_message_id="SMold",
               sent_ago=timedelta(days=40))

    assert (await sms_in(client, "3", "SMans1")).status_code == 200
    assert (await sms_in(client, "3", "SMans1")).status_code == 200  # the same webhook again

    with session_scope(db_url) as s:
        answers = list(s.exec(select(SurveyAnswer)))
    assert [(a.customer_id, a.touch_id, a.kind, a.score) for a in answers] == [(customer, survey, "nps", 3)]
    answered = events(db_url, "survey.answered")
    assert len(answered) == 1
    assert answered[0].external_id == f"survey:nps:{survey}"
    assert answered[0].data["nps"] == 3 and answered[0].data["survey"] == "nps_monthly_survey"
    assert [e.type for e in heard] == ["survey.answered"]

    # A second, different number for the same survey is kept as a reply, not a second answer.
    assert (await sms_in(client, "９", "SMans2")).status_code == 200
    with session_scope(db_url) as s:
        assert len(list(s.exec(select(SurveyAnswer)))) == 1
    assert len(events(db_url, "message.replied")) == 1


async def test_digit_without_a_recent_survey_is_a_reply(db_url: str, client: httpx.AsyncClient) -> None:
    customer = make_customer(db_url)
    push = make_touch(db_url, customer, "push", provider_message_id="SMpush")
    assert (await sms_in(client, "5", "SMx")).status_code == 200
    with session_scope(db_url) as s:
        assert list(s.exec(select(SurveyAnswer))) == []
    replied = outcomes(db_url, "replied")
    assert [(o.touch_id, o.customer_id) for o in replied] == [(push, customer)]


async def test_other_text_is_a_reply_event(db_url: str, client: httpx.AsyncClient, heard: list[StoredEvent]) -> None:
    customer = make_customer(db_url)
    push = make_touch(db_url, customer, "push", provider_message_id="SMpush")
    assert (await sms_in(client, "礼包怎么领取？", "SMq1")).status_code == 200
    assert (await sms_in(client, "礼包怎么领取？", "SMq1")).status_code == 200
    replied = events(db_url, "message.replied")
    assert [(e.customer_id, e.data["text"], e.data["touch_id"], e.data["channel"]) for e in replied] == [
        (customer, "礼包怎么领取？", push, "sms")]
    assert len(outcomes(db_url, "replied")) == 1
    assert customer_row(db_url, customer).consent_sms is True
    assert len(heard) == 1


async def test_unknown_sender_changes_nothing(db_url: str, client: httpx.AsyncClient) -> None:
    make_customer(db_url)
    assert (await sms_in(client, "TD", "SMstranger", sender="+8613700000000")).status_code == 200
    with session_scope(db_url) as s:
        assert list(s.exec(select(Outcome))) == [] and list(s.exec(select(Event))) == []


async def test_unsubscribe_link(db_url: str, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_SECRET_KEY", "test-only-secret")
    customer = make_customer(db_url)
    planned_mail = make_touch(db_url, customer, "mail", channel="email", status=TouchStatus.PLANNED)
    link = unsubscribe_url("C-1", "email")
    path = link[link.index("/hooks/"):]

    page = await client.get(path)  # a link scanner's GET must not unsubscribe anyone
    assert page.status_code == 200 and "<form" in page.text
    assert customer_row(db_url, customer).consent_email is True

    assert (await client.post(path, data={"List-Unsubscribe": "One-Click"})).status_code == 200
    assert (await client.post(path)).status_code == 200
    row = customer_row(db_url, customer)
    assert (row.consent_email, row.consent_email_source, row.consent_sms) == (False, "link:email", True)
    assert touch_row(db_url, planned_mail).status == TouchStatus.CANCELLED
    assert len(outcomes(db_url, "opted_out")) == 1

    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert (await client.post(forged)).status_code == 404


# --- what an opt-out does to the touches still planned on that channel ---------------------------


def planned_touch(url: str, customer_id: int, key: str, *, category: str, fallback: list[str],
                  channel: str = "sms") -> int:
    now = utcnow()
    return inserted(url, Touch(key=key, customer_id=customer_id, journey_id=f"j-{key}", journey_version="v1",
                               step_id="s", occurrence=key, category=category, channel=channel, template="t",
                               planned_for=now, due_at=now - timedelta(minutes=1), status=TouchStatus.PLANNED,
                               fallback_channels=fallback, created_at=now))


def book_of_touches(url: str, customer_id: int, prefix: str) -> dict[str, int]:
    """One customer's planned SMS touches: renewal reminders (service) with different fallback lists
    and a push (marketing) that could fall back to WeChat."""
    return {
        "renewal": planned_touch(url, customer_id, f"{prefix}-renewal", category="service",
                                 fallback=["email", "wechat"]),
        "claim": planned_touch(url, customer_id, f"{prefix}-claim", category="service", fallback=[]),
        "push": planned_touch(url, customer_id, f"{prefix}-push", category="marketing", fallback=["wechat"]),
    }


async def test_opt_out_moves_service_touches_to_their_next_consented_channel_and_cancels_marketing(
        db_url: str, client: httpx.AsyncClient) -> None:
    # No e-mail address: the renewal reminder's first fallback cannot reach them, WeChat can.
    customer = make_customer(db_url, email=None)
    touches = book_of_touches(db_url, customer, "a")

    assert (await sms_in(client, "退订", "SMoptout")).status_code == 200

    renewal = touch_row(db_url, touches["renewal"])
    assert (renewal.status, renewal.channel, renewal.fallback_channels, renewal.attempts) == (
        TouchStatus.PLANNED, "wechat", [], 0)
    assert renewal.error_reason == "opted out of sms: moved to wechat"
    claim = touch_row(db_url, touches["claim"])
    assert (claim.status, claim.channel) == (TouchStatus.CANCELLED, "sms")
    assert claim.error_reason == "opted out of sms: no other consented, reachable channel (none listed)"
    push = touch_row(db_url, touches["push"])
    assert (push.status, push.channel) == (TouchStatus.CANCELLED, "sms")
    assert push.error_reason == "opted out of sms: a marketing touch is not moved to another channel"

    # Twilio repeating the webhook moves nothing again.
    assert (await sms_in(client, "退订", "SMoptout")).status_code == 200
    assert touch_row(db_url, touches["renewal"]).channel == "wechat"


async def test_opt_out_and_dispatch_settle_the_same_touches_the_same_way(
        db_url: str, client: httpx.AsyncClient) -> None:
    """Customer A opts out by replying TD; customer B's SMS consent goes some other way after
    planning (an import, the console). Dispatch then sends what is left: both end the same."""
    replied = make_customer(db_url, "C-A", email=None)
    withdrawn = make_customer(db_url, "C-B", phone="+8613900002222", openid="oB", email=None)
    by_reply = book_of_touches(db_url, replied, "a")
    by_import = book_of_touches(db_url, withdrawn, "b")
    assert (await sms_in(client, "TD", "SMtd")).status_code == 200
    with session_scope(db_url) as s:
        row = s.get(Customer, withdrawn)
        assert row is not None
        row.consent_sms = False

    engine = make_engine(db_url)
    with RecordingProvider().running() as provider:
        adapters = {ch: HttpAdapter(ch, provider.port) for ch in ("sms", "wechat", "email")}
        dispatcher = Dispatcher(engine, adapters, PlainRenderer(), worker_id="w")  # type: ignore[arg-type]
        try:
            await dispatcher.run_until_idle()
        finally:
            await dispatcher.aclose()
    engine.dispose()

    def settled(ids: dict[str, int]) -> dict[str, tuple[str, str]]:
        return {name: (touch_row(db_url, i).status, touch_row(db_url, i).channel) for name, i in ids.items()}

    expected = {"renewal": (TouchStatus.SENT, "wechat"), "claim": (TouchStatus.CANCELLED, "sms"),
                "push": (TouchStatus.CANCELLED, "sms")}
    assert settled(by_reply) == expected
    assert settled(by_import) == expected
    assert sorted(to for _, to in provider.accepted) == ["oB", OPENID]
    assert touch_row(db_url, by_import["push"]).error_reason == (
        "no consent for sms: a marketing touch is not moved to another channel")
