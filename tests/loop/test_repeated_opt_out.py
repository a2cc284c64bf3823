"""An opt-out repeated under a new message id (a second TD, a second unfollow) is no second opt-out:
no second ``opted_out`` outcome, no second ``message.opted_out`` event, no second confirmation; the
reply itself is kept. A provider repeating the same webhook still gets the same answer.

Through the real webhook app and handlers (signed as the providers sign) over a migrated SQLite store.
"""

from __future__ import annotations

import itertools
import urllib.parse
from datetime import timedelta

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select
from twilio.request_validator import RequestValidator

from channels.optout import StoredEvent
from engine.loop.receipts import handle_twilio_inbound
from store.db import session_scope
from store.models import Customer, Event, Outcome, Touch
from tests.db_support import stored, stored_rows
from tests.loop import test_receipts as receipts
from tests.loop.test_optout import sms_in
from tests.loop.test_receipts import make_customer, make_touch, wechat_query, wechat_xml

client = receipts.client
heard = receipts.heard
secrets = receipts.secrets

KEYWORDS = ["TD", "退订", "STOP", "unsubscribe"]


def _customer_outcomes(url: str, customer_id: int) -> list[Outcome]:
    with session_scope(url) as s:
        return list(s.exec(select(Outcome).where(Outcome.customer_id == customer_id).order_by(Outcome.id)))


def _opt_out_events(url: str, customer_id: int) -> list[Event]:
    return [e for e in stored_rows(url, Event, type="message.opted_out") if e.customer_id == customer_id]


async def test_a_second_td_is_kept_as_a_reply_without_a_second_opt_out_or_confirmation(
        db_url: str, client: httpx.AsyncClient, heard: list[StoredEvent]) -> None:
    who = make_customer(db_url)
    first = await sms_in(client, "TD", "SMfirst")
    assert "<Message>" in first.text

    second = await sms_in(client, "td", "SMsecond")
    assert second.status_code == 200 and "<Message>" not in second.text
    assert (await sms_in(client, "TD", "SMsecond")).text == second.text  # repeated by Twilio: the same
    again = await sms_in(client, "TD", "SMfirst")  # the first one repeated: its confirmation again
    assert again.text == first.text

    kinds = [(o.kind, o.touch_id, o.detail.get("message_id"), o.detail.get("opt_out"))
             for o in _customer_outcomes(db_url, who)]
    assert kinds == [("opted_out", None, "SMfirst", None), ("replied", None, "SMsecond", "already")]
    assert len(_opt_out_events(db_url, who)) == 1
    assert [e.type for e in heard] == ["message.opted_out"]
    assert not stored_rows(db_url, Event, type="message.replied")  # nothing for a journey to act on
    assert stored(db_url, Customer, who).consent_sms_source == "reply:sms"


async def test_marketing_then_the_channel_each_once(db_url: str, client: httpx.AsyncClient) -> None:
    """A TD to a marketing message withdraws marketing once; a later TD to a service message still
    withdraws what is left (the channel), with its own confirmation."""
    who = make_customer(db_url)
    make_touch(db_url, who, "promo", provider_message_id="SMpromo")  # marketing, sent an hour ago
    assert "营销" in (await sms_in(client, "TD", "SMm1")).text
    assert "<Message>" not in (await sms_in(client, "TD", "SMm2")).text

    service = make_touch(db_url, who, "renewal", provider_message_id="SMrenewal", sent_ago=timedelta(minutes=5))
    with session_scope(db_url) as s:
        row = s.get(Touch, service)
        assert row is not None
        row.category = "service"
    assert "全部短信" in (await sms_in(client, "TD", "SMs1")).text
    assert "<Message>" not in (await sms_in(client, "退订", "SMs2")).text

    purposes = [o.detail["purpose"] for o in _customer_outcomes(db_url, who) if o.kind == "opted_out"]
    assert purposes == ["marketing", "all"]
    assert len(_opt_out_events(db_url, who)) == 2
    row = stored(db_url, Customer, who)
    assert (row.consent_sms, row.consent_sms_marketing) == (False, False)


async def test_unfollowing_twice_is_one_opt_out(db_url: str, client: httpx.AsyncClient) -> None:
    who = make_customer(db_url)
    for created in ("1764000000", "1764000500"):  # unfollowed, followed again, unfollowed again
        body = wechat_xml(FromUserName=receipts.OPENID, CreateTime=created, MsgType="event", Event="unsubscribe")
        assert (await client.post(f"/hooks/wechat?{wechat_query()}", content=body)).status_code == 200
    assert [o.kind for o in _customer_outcomes(db_url, who)] == ["opted_out"]
    assert len(_opt_out_events(db_url, who)) == 1


# --- any sequence of keyword replies ----------------------------------------------------------------------

TOKEN = "repeated-opt-out-token"
URL = "https://hooks.example.test/hooks/twilio/inbound"
_serial = itertools.count()


def _inbound(url: str, phone: str, body: str, sid: str) -> str:
    form = {"From": phone, "Body": body, "MessageSid": sid}
    signature = RequestValidator(TOKEN).compute_signature(URL, form)
    status, answer = handle_twilio_inbound(URL, {"X-Twilio-Signature": signature},
                                           urllib.parse.urlencode(form).encode(), db_url=url, auth_token=TOKEN,
                                           keywords=KEYWORDS)
    assert status == 200, answer
    return answer


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(replies=st.lists(st.tuples(st.sampled_from(KEYWORDS), st.integers(0, 3)), min_size=1, max_size=8))
def test_any_sequence_of_keyword_replies_opts_out_once(db_url: str, replies: list[tuple[str, int]]) -> None:
    n = next(_serial)
    phone = f"+86139{n:08d}"
    who = make_customer(db_url, f"C-rep-{n}", phone=phone, openid=None, email=None)
    first_sid = f"SMrep{n}x{replies[0][1]}"
    for keyword, i in replies:
        sid = f"SMrep{n}x{i}"
        confirmed = "<Message>" in _inbound(db_url, phone, keyword, sid)
        assert confirmed == (sid == first_sid), (sid, first_sid)

    outcomes = _customer_outcomes(db_url, who)
    assert [o.detail["message_id"] for o in outcomes if o.kind == "opted_out"] == [first_sid]
    later = sorted({f"SMrep{n}x{i}" for _, i in replies} - {first_sid})
    assert sorted(o.detail["message_id"] for o in outcomes if o.kind == "replied") == later
    assert len(_opt_out_events(db_url, who)) == 1
