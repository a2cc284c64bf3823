"""A status callback that reaches us before dispatch has recorded the send (Twilio answers the API call
after it has queued the message, and a fast carrier reports at once): the receipt finds its touch by the
``touch_key`` of the signed callback URL, and dispatch's later record of the send must not undo it.

The provider here is a double of Twilio's side only: for each message it posts the signed status
callback to the real handler, then answers the send; dispatcher, handler and store are the product's.
"""

from __future__ import annotations

import asyncio
import urllib.parse

import pytest
from sqlmodel import select
from twilio.request_validator import RequestValidator

from channels.base import OutboundMessage, SendResult
from channels.sms_twilio import with_touch_key
from engine.loop.receipts import handle_twilio_status
from engine.sending.dispatch import Dispatcher
from store.db import make_engine, session_scope
from store.models import Outcome, Touch, TouchStatus
from tests.dispatch_support import PlainRenderer, make_customers, make_touches

TOKEN = "receipt-before-record-token"
CALLBACK = "https://hooks.example.test/hooks/twilio/status"


class ReceiptFirst:
    """Twilio taking each message, its status callback arriving before the API's answer does."""

    channel = "sms"

    def __init__(self, db_url: str, status: str, code: str | None) -> None:
        self.db_url, self.status, self.code = db_url, status, code
        self.answers: list[tuple[int, str]] = []

    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        results = []
        for n, message in enumerate(messages):
            sid = f"SM{self.status}{n}"
            assert message.status_callback_url is not None
            url = with_touch_key(message.status_callback_url, message.touch_key)
            form = {"MessageSid": sid, "MessageStatus": self.status, **({"ErrorCode": self.code} if self.code else {})}
            signature = RequestValidator(TOKEN).compute_signature(url, form)
            self.answers.append(await asyncio.to_thread(
                handle_twilio_status, url, {"X-Twilio-Signature": signature}, urllib.parse.urlencode(form).encode(),
                db_url=self.db_url, auth_token=TOKEN))
            results.append(SendResult(message.touch_key, True, provider_message_id=sid, provider_status="queued"))
        return results

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize(("status", "code", "expected"), [
    ("failed", "30005", (TouchStatus.FAILED, "permanent", "failed: unknown destination handset")),
    ("undelivered", "30001", (TouchStatus.FAILED, "retryable", "undelivered: delivery error 30001")),
    ("delivered", None, (TouchStatus.DELIVERED, None, None)),
])
def test_dispatch_recording_the_send_keeps_what_an_earlier_receipt_settled(
        db_url: str, status: str, code: str | None, expected: tuple[str, str | None, str | None]) -> None:
    """A failure's class and reason were wiped (NULL) when dispatch then recorded the send's success."""
    engine = make_engine(db_url)
    [customer] = make_customers(engine, 1)
    make_touches(engine, [customer])  # no fallback channel: a permanent failure settles the touch
    provider = ReceiptFirst(db_url, status, code)
    dispatcher = Dispatcher(engine, {"sms": provider}, PlainRenderer(), worker_id="w-receipt-first",
                            callback_url=lambda channel, touch: CALLBACK)
    counts = asyncio.run(dispatcher.run_until_idle())
    engine.dispose()

    assert (counts.sent, provider.answers) == (1, [(200, "applied")])
    with session_scope(db_url) as session:
        touch = session.exec(select(Touch)).one()
        assert (touch.status, touch.error_class, touch.error_reason) == expected
        assert touch.provider_message_id == f"SM{status}0"
        kinds = sorted(o.kind for o in session.exec(select(Outcome)))
    assert kinds == sorted(["sent", expected[0]])
