"""A WeChat template-send result pushed before dispatch has recorded the send: WeChat answers the send
with the message id and pushes TEMPLATESENDJOBFINISH within seconds, while dispatch writes the ids of a
batch once every send of it is answered, and the push names nothing else of ours. Such a receipt was
answered 'success' and lost, the touch left 'sent' for good (never delivered in the figures, a journey
waiting for message.delivered never moving on).

The provider is a double of WeChat's side only: for each message it pushes the result, signed as WeChat
signs it, to the real handler, then answers the send. Dispatcher, handler, store and the outcome-ingest
step (``settle_parked_receipts``) are the product's.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import select

from channels.base import OutboundMessage, SendResult
from engine.loop.delivery_receipts import PARKED, PARKED_FOR
from engine.loop.receipts import handle_wechat, settle_parked_receipts
from engine.sending.dispatch import Dispatcher
from store.clock import utcnow
from store.db import make_engine, session_scope
from store.models import Event, Outcome, Touch, TouchStatus
from tests.dispatch_support import PlainRenderer, make_customers, make_touches
from tests.loop.test_receipts import wechat_query, wechat_xml

TOKEN = "wechat-before-record-token"
BASE = "https://hooks.example.test/hooks/wechat"


def push(db_url: str, msg_id: str, status: str = "success") -> tuple[int, str]:
    body = wechat_xml(FromUserName="oBeforeRecord0001", CreateTime="1764000000", MsgType="event",
                      Event="TEMPLATESENDJOBFINISH", MsgID=msg_id, Status=status)
    return handle_wechat("POST", f"{BASE}?{wechat_query(TOKEN)}", body, db_url=db_url, token=TOKEN)


class PushFirst:
    """WeChat taking each template message, its TEMPLATESENDJOBFINISH reaching us before the send's answer."""

    channel = "wechat"

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.answers: list[tuple[int, str]] = []

    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        results = []
        for n, message in enumerate(messages):
            msg_id = f"700000000{n}"
            self.answers.append(await asyncio.to_thread(push, self.db_url, msg_id))
            results.append(SendResult(message.touch_key, True, provider_message_id=msg_id))
        return results

    async def aclose(self) -> None:
        return None


def _kinds(db_url: str) -> list[str]:
    with session_scope(db_url) as session:
        return sorted(o.kind for o in session.exec(select(Outcome)))


def test_a_result_pushed_before_the_send_is_recorded_is_applied_once_it_is(db_url: str) -> None:
    engine = make_engine(db_url)
    make_touches(engine, make_customers(engine, 2), channel="wechat")
    provider = PushFirst(db_url)
    counts = asyncio.run(Dispatcher(engine, {"wechat": provider}, PlainRenderer(), worker_id="w-push-first")
                         .run_until_idle())
    engine.dispose()
    assert (counts.sent, provider.answers) == (2, [(200, "success")] * 2)
    assert _kinds(db_url) == [PARKED, PARKED, "sent", "sent"]

    assert settle_parked_receipts(db_url) == {"applied": 2, "dropped": 0}
    assert settle_parked_receipts(db_url) == {"applied": 0, "dropped": 0}
    with session_scope(db_url) as session:
        touches = session.exec(select(Touch)).all()
        assert [t.status for t in touches] == [TouchStatus.DELIVERED] * 2
        assert all(t.delivered_at is not None for t in touches)
        delivered = [e.data["touch_id"] for e in session.exec(select(Event).where(Event.type == "message.delivered"))]
        assert sorted(delivered) == sorted(t.id for t in touches if t.id is not None)
    assert _kinds(db_url) == ["delivered", "delivered", "sent", "sent"]
    # WeChat repeating the push now finds the touch: nothing more is counted.
    assert push(db_url, "7000000000") == (200, "success")
    assert _kinds(db_url) == ["delivered", "delivered", "sent", "sent"]


def test_a_result_no_touch_ever_carries_is_dropped_after_an_hour(db_url: str) -> None:
    """Another system's template message on the same official account: kept an hour, then gone."""
    assert push(db_url, "7999999999") == (200, "success")
    assert push(db_url, "7999999999") == (200, "success")  # a repeat is kept once
    assert _kinds(db_url) == [PARKED]
    assert settle_parked_receipts(db_url) == {"applied": 0, "dropped": 0}
    later = utcnow() + PARKED_FOR + timedelta(minutes=1)
    assert settle_parked_receipts(db_url, later) == {"applied": 0, "dropped": 1}
    assert _kinds(db_url) == []
