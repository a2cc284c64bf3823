"""Every inbound event is acted on at once, whoever reports it: the journey's next step or task
exists as soon as the webhook or the desk's outcome call returns, with no plan run in between.

Sources: an SMS reply, a WeChat reply, an NPS digit by SMS, a delivery receipt (Twilio and
WeChat), and an agent's task outcome. (``POST /api/events`` takes the same path: tests/console
and tests/loop/test_events.py.) Each webhook is signed as the provider signs it and called as
the console's router calls it; the store is a real migrated SQLite database, and PostgreSQL.
"""

from __future__ import annotations

import time
import urllib.parse

import pytest
from sqlmodel import Session, col, select

from engine.loop import events as events_module
from engine.loop.receipts import handle_twilio_inbound, handle_twilio_status, handle_wechat
from engine.planning.planner import plan
from store.db import get_engine
from store.models import AgentTask, AppUser, Event, Touch, TouchStatus
from tests.events_support import missed_call_journey, task_journey
from tests.loop.test_receipts import (
    BASE,
    TWILIO_TOKEN,
    WECHAT_TOKEN,
    make_touch,
    twilio_signed,
    wechat_query,
    wechat_xml,
)
from tests.plan_support import Book, utc

NPS_CALLBACK = """
id: nps-callback
name: NPS callback
category: service
entry:
  event:
    type: survey.answered
    when: {field: event.data.nps, op: le, value: 6}
steps:
  - id: call
    task: {queue: service_recovery, due_within: 6h}
"""

CALLBACK = missed_call_journey("callback", '{schedule: {cron: "0 10 1 * *"}}')


@pytest.fixture
def hooks_book(book: Book, monkeypatch: pytest.MonkeyPatch) -> Book:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("WECHAT_TOKEN", WECHAT_TOKEN)
    monkeypatch.delenv("WECHAT_ENCODING_AES_KEY", raising=False)
    monkeypatch.delenv("JOURNEYS_PUBLIC_URL", raising=False)
    book.journey("reply", task_journey("reply-call", "Reply", "message.replied", "service_recovery", "4h"))
    book.journey("nps", NPS_CALLBACK)
    book.journey("failed", task_journey("undeliverable", "Undeliverable", "message.failed", "ops", "1d"))
    return book


def tasks_of(book: Book, customer_id: int) -> list[tuple[str, str]]:
    with Session(get_engine(book.url)) as s:
        return [(t.journey_id, t.step_id) for t in s.exec(
            select(AgentTask).where(AgentTask.customer_id == customer_id).order_by(col(AgentTask.id)))]


def sms_in(book: Book, sender: str, text: str, sid: str) -> int:
    form = {"From": sender, "To": "+10000000000", "Body": text, "MessageSid": sid, "AccountSid": "ACtest"}
    url, headers = twilio_signed("/hooks/twilio/inbound", form)
    return handle_twilio_inbound(url, headers, _form(form), db_url=book.url)[0]


def _form(form: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(form).encode()


def test_an_sms_reply_opens_its_task_before_the_webhook_answers(hooks_book: Book) -> None:
    customer = hooks_book.customer(phone="+8613811112222")
    assert sms_in(hooks_book, "+8613811112222", "请给我回电话", "SMreply1") == 200
    assert tasks_of(hooks_book, customer) == [("reply-call", "respond")]
    # The provider repeating its callback changes nothing.
    assert sms_in(hooks_book, "+8613811112222", "请给我回电话", "SMreply1") == 200
    assert tasks_of(hooks_book, customer) == [("reply-call", "respond")]


def test_a_wechat_reply_opens_its_task_before_the_webhook_answers(hooks_book: Book) -> None:
    customer = hooks_book.customer(wechat_openid="oReplyOpenId")
    body = wechat_xml(FromUserName="oReplyOpenId", MsgType="text", Content="什么时候续保？", MsgId="9001",
                      CreateTime=str(int(time.time())))
    assert handle_wechat("POST", f"{BASE}/hooks/wechat?{wechat_query()}", body, db_url=hooks_book.url) == (
        200, "success")
    assert tasks_of(hooks_book, customer) == [("reply-call", "respond")]


def test_an_nps_digit_opens_the_callback_task_before_the_webhook_answers(hooks_book: Book) -> None:
    customer = hooks_book.customer(phone="+8613833334444")
    make_touch(hooks_book.url, customer, "survey-1", template="monthly_nps_survey", provider_message_id="SMsurvey")
    assert sms_in(hooks_book, "+8613833334444", "3", "SMdigit") == 200
    assert tasks_of(hooks_book, customer) == [("nps-callback", "call")]
    happy = hooks_book.customer(phone="+8613855556666")
    make_touch(hooks_book.url, happy, "survey-2", template="monthly_nps_survey", provider_message_id="SMsurvey2")
    assert sms_in(hooks_book, "+8613855556666", "9", "SMdigit2") == 200
    assert tasks_of(hooks_book, happy) == []  # a promoter's answer is recorded; the condition says no call


def test_a_failed_delivery_receipt_is_an_event_acted_on_before_the_webhook_answers(hooks_book: Book) -> None:
    customer = hooks_book.customer()
    touch = make_touch(hooks_book.url, customer, "sms-1", provider_message_id="SMfail")
    form = {"MessageSid": "SMfail", "MessageStatus": "undelivered", "ErrorCode": "30005", "AccountSid": "ACtest"}
    url, headers = twilio_signed("/hooks/twilio/status", form)
    assert handle_twilio_status(url, headers, _form(form), db_url=hooks_book.url) == (200, "applied")
    assert tasks_of(hooks_book, customer) == [("undeliverable", "respond")]
    with Session(get_engine(hooks_book.url)) as s:
        [event] = s.exec(select(Event).where(Event.type == "message.failed")).all()
        assert event.data["touch_id"] == touch and event.data["channel"] == "sms"
        assert event.processed_at is not None
    # Twilio repeats the callback: one event, one task.
    assert handle_twilio_status(url, headers, _form(form), db_url=hooks_book.url) == (200, "duplicate")
    assert tasks_of(hooks_book, customer) == [("undeliverable", "respond")]


def test_a_wechat_template_failure_is_acted_on_before_the_webhook_answers(hooks_book: Book) -> None:
    customer = hooks_book.customer()
    make_touch(hooks_book.url, customer, "wx-1", channel="wechat", provider_message_id="2001")
    body = wechat_xml(FromUserName="o1", MsgType="event", Event="TEMPLATESENDJOBFINISH", MsgID="2001",
                      Status="failed: system failed", CreateTime="1")
    assert handle_wechat("POST", f"{BASE}/hooks/wechat?{wechat_query()}", body, db_url=hooks_book.url)[0] == 200
    assert tasks_of(hooks_book, customer) == [("undeliverable", "respond")]


def test_an_event_no_journey_acts_on_is_settled_without_a_planner_run(
        hooks_book: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delivered receipt (no journey here waits for one) is stored and marked processed at once,
    without the 5–15 ms planner run a receipt per message would cost."""
    runs: list[object] = []
    real_run = events_module.Planner.run

    def counted_run(self: events_module.Planner) -> object:
        runs.append(self)
        return real_run(self)

    monkeypatch.setattr(events_module.Planner, "run", counted_run)
    customer = hooks_book.customer(phone="+8613877778888")
    make_touch(hooks_book.url, customer, "sms-ok", provider_message_id="SMok")
    form = {"MessageSid": "SMok", "MessageStatus": "delivered", "AccountSid": "ACtest"}
    url, headers = twilio_signed("/hooks/twilio/status", form)
    assert handle_twilio_status(url, headers, _form(form), db_url=hooks_book.url) == (200, "applied")
    with Session(get_engine(hooks_book.url)) as s:
        [event] = s.exec(select(Event).where(Event.type == "message.delivered")).all()
        assert event.processed_at is not None
    assert runs == []
    # A reply, which a journey here does act on, still runs the planner.
    assert sms_in(hooks_book, "+8613877778888", "hi", "SMhi") == 200
    assert len(runs) == 1


def test_a_task_outcome_moves_the_journey_on_before_the_desk_call_returns(book: Book) -> None:
    from console import tasks
    from console.auth import CurrentUser

    book.journey("callback", CALLBACK)
    customer = book.customer(tier="gold")
    plan(utc(2027, 3, 1, 3), utc(2027, 2, 28), url=book.url)  # 10:00 Shanghai: the callback task
    with Session(get_engine(book.url)) as s:
        agent = AppUser(username="li", display_name="Li", role="agent", password_hash="-", team="gold_callback",
                        locale="zh-CN", created_at=utc(2027, 1, 1))
        s.add(agent)
        s.commit()
        s.refresh(agent)
        [task] = s.exec(select(AgentTask).where(AgentTask.journey_id == "callback")).all()
        user = CurrentUser.of(agent)
    assert task.id is not None
    tasks.complete(user, task.id, "no_answer", now=utc(2027, 3, 1, 4), db_url=book.url)
    with Session(get_engine(book.url)) as s:
        sent = s.exec(select(Touch).where(Touch.customer_id == customer, Touch.step_id == "missed_call")).all()
    assert [(t.journey_id, t.status, t.channel) for t in sent] == [("callback", TouchStatus.PLANNED, "sms")]
