"""Issue 19 end to end: planner → dispatch → the real adapters → the stand-ins, and back.

A claim is filed; the journey calls the CRM (a signed webhook), waits for the call's outcome event
and then tells the customer by app push (JPush), whose receipt is looked up; the journey's own cap
and a channel's cap drop what would exceed them; ``channels: by_engagement`` picks the list by the
customer's activity and churn risk."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from channels.push_jpush import JPushAdapter
from channels.webhook import Endpoint, WebhookAdapter
from engine.loop.push_receipts import poll_push_receipts
from engine.planning.planner import plan
from engine.sending.dispatch import Dispatcher
from engine.sending.journey_rules import JourneyRules
from engine.sending.render_batch import StoreRenderer
from standins.jpush_api import JPushStandin
from standins.webhook_receiver import WebhookReceiverStandin
from store.clock import utcnow
from store.db import get_engine
from store.models import Claim, Event, Touch, TouchStatus
from tests.dispatch_support import dispatch_until_idle
from tests.events_support import crm_case_journey
from tests.plan_support import ROOT, Book
from tests.standin_support import serving

SECRET = "crm-shared-secret"
CLAIM_CRM = crm_case_journey("claim-crm", "CRM case for a claim", "service", target="crm", channels="[push, sms]",
                             template="note", urgent=True)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiverStandin]:
    yield from serving(WebhookReceiverStandin(SECRET))


@pytest.fixture
def jpush() -> Iterator[JPushStandin]:
    yield from serving(JPushStandin())


def setup_book(book: Book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    shutil.copytree(ROOT / "templates" / "crm_case_opened", book.templates / "crm_case_opened")
    note = book.templates / "note"
    note.mkdir()
    (note / "meta.yaml").write_text("description: note\ncategory: service\n", encoding="utf-8")
    for locale in ("zh-CN", "en"):
        (note / f"push.{locale}.j2").write_text("理赔进度\n{{ customer.name }}您好，您的理赔已建立服务工单。\n",
                                                encoding="utf-8")
        (note / f"sms.{locale}.j2").write_text("{{ customer.name }}您好，您的理赔已建立服务工单。", encoding="utf-8")
    book.journey("claim-crm", CLAIM_CRM)


def file_claim(book: Book, customer_id: int, n: int, at: object) -> None:
    book.add(Claim(external_id=f"CL{n}", customer_id=customer_id, filed_at=at, amount=1200.0 + n),  # type: ignore[arg-type]
             Event(external_id=f"ev-claim-{n}", type="claim.filed", customer_id=customer_id,
                   data={"claim_id": f"CL{n}", "amount": 1200.0 + n}, occurred_at=at, received_at=at))  # type: ignore[arg-type]


def dispatch(book: Book, adapters: dict[str, object]) -> None:
    dispatcher = Dispatcher(get_engine(book.url), adapters, StoreRenderer(), worker_id="w",  # type: ignore[arg-type]
                            journey_rules=JourneyRules.from_files)

    dispatch_until_idle(dispatcher)


def touches(book: Book, channel: str) -> list[Touch]:
    with Session(get_engine(book.url)) as s:
        return list(s.exec(select(Touch).where(Touch.channel == channel).order_by(Touch.id)).all())  # type: ignore[arg-type]


def test_claim_calls_the_crm_then_pushes_and_the_journey_cap_holds(
        sqlite_book: Book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        receiver: WebhookReceiverStandin, jpush: JPushStandin) -> None:
    book = sqlite_book
    setup_book(book, tmp_path, monkeypatch)
    who = book.customer(push_registration_id="170976fa8a8620ca0d4", consent_push=True)
    t0 = utcnow() - timedelta(minutes=10)
    file_claim(book, who, 1, t0)
    file_claim(book, who, 2, t0 + timedelta(minutes=1))
    plan(utcnow(), t0 - timedelta(hours=1), url=book.url)
    calls = touches(book, "webhook")
    assert [(t.template, t.status, t.category) for t in calls] == [("crm_case_opened", "planned", "service")] * 2

    def adapters() -> dict[str, object]:
        return {"webhook": WebhookAdapter({"crm": Endpoint(receiver.url, SECRET.encode())}),
                "push": JPushAdapter("standinappkey0000000001", "standin-master-secret", api_base=jpush.base_url)}

    receiver.faults.configure(accepted_5xx_rate=1.0)  # the CRM takes the first tries but answers 503
    dispatch(book, adapters())
    assert [(t.status, t.error_class, t.attempts) for t in touches(book, "webhook")] == [
        ("planned", "retryable", 1)] * 2  # backing off (engine.sending.retry)

    receiver.faults.configure(accepted_5xx_rate=0.0)
    with Session(get_engine(book.url)) as s:  # the back-off has passed
        for row in s.exec(select(Touch)).all():
            row.next_attempt_at = utcnow() - timedelta(seconds=1)
            s.add(row)
        s.commit()
    dispatch(book, adapters())
    assert [t.status for t in touches(book, "webhook")] == ["sent", "sent"]
    # Each case taken once although sent twice: the retry carried the same idempotency key.
    assert len(receiver.log) == 2 and receiver.counts["replayed"] == 2 and not receiver.log.duplicates()
    case = receiver.log.entries[0]
    assert case.detail["customer_id"] == "C00001" and case.detail["claim"]["amount"] in (1201.0, 1202.0)
    assert receiver.counts["bad_signature"] == 0
    with Session(get_engine(book.url)) as s:
        outcomes = s.exec(select(Event).where(Event.type == "webhook.crm.succeeded")).all()
    assert sorted(e.data["occurrence"] for e in outcomes) == sorted(t.occurrence for t in calls)
    assert all(e.data["target"] == "crm" and e.customer_id == who for e in outcomes)

    # The next plan sees each call's outcome: the waits end and the customer is to be told by app push.
    plan(utcnow(), url=book.url)
    told = touches(book, "push")
    assert [(t.template, t.fallback_channels) for t in told] == [("note", ["sms"])] * 2
    dispatch(book, adapters())
    first, second = touches(book, "push")
    assert first.status == "sent" and first.provider_message_id
    # The journey's own cap (1 per 30 days) drops the second message when it is planned (dispatch checks again).
    assert (second.status, second.error_reason) == (
        "dropped", "journey_cap: journey claim-crm cap 1 per 30d reached")
    [pushed] = jpush.log.entries
    assert pushed.recipient == "170976fa8a8620ca0d4" and pushed.detail["title"] == "理赔进度"

    async def receipts() -> dict[str, int]:
        adapter = JPushAdapter("standinappkey0000000001", "standin-master-secret", api_base=jpush.base_url)
        try:
            return dict(await poll_push_receipts(get_engine(book.url), adapter))
        finally:
            await adapter.aclose()

    assert asyncio.run(receipts()) == {"applied": 1}
    assert touches(book, "push")[0].status == TouchStatus.DELIVERED


def test_a_call_that_keeps_failing_ends_as_a_failed_event(
        sqlite_book: Book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: WebhookReceiverStandin) -> None:
    book = sqlite_book
    setup_book(book, tmp_path, monkeypatch)
    who = book.customer()
    file_claim(book, who, 1, utcnow() - timedelta(minutes=5))
    plan(utcnow(), utcnow() - timedelta(hours=1), url=book.url)
    receiver.faults.configure(permanent_rate=1.0)  # the CRM refuses the case: 422
    dispatch(book, {"webhook": WebhookAdapter({"crm": Endpoint(receiver.url, SECRET.encode())})})
    [call] = touches(book, "webhook")
    assert (call.status, call.error_class) == ("failed", "permanent")
    with Session(get_engine(book.url)) as s:
        [failed] = s.exec(select(Event).where(Event.type == "webhook.crm.failed")).all()
    assert failed.data["reason"] == "crm answered HTTP 422" and failed.data["occurrence"] == call.occurrence
