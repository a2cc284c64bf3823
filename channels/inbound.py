"""What a customer's inbound text means: an opt-out, an NPS answer, or a reply.

Called by the SMS and WeChat webhooks (``engine.loop.receipts``) inside one transaction;
every write is keyed on the provider's message id, so a webhook the provider repeats
changes nothing:

- an opt-out keyword (``DeliveryConfig.opt_out_keywords``) → ``channels.optout.record_opt_out``
  for every customer at that address, on that channel only. A reply to a marketing message (the
  last one sent there in ``OPT_OUT_REPLY_WINDOW``) withdraws the marketing consent on that channel
  only (their planned marketing touches there are cancelled; service messages still come); a
  reply to anything else withdraws the channel (planned service touches move to the next
  consented channel of their list, marketing ones are cancelled). ``InboundResult.confirmation``
  is the answer that says which. The keyword again under another message id, from customers with
  nothing left to withdraw, is no second opt-out: no confirmation, outcome or event, only the reply
  kept (an outcome ``replied`` marked ``opt_out: already``, on no touch, so no figure counts it).
  A provider that says it has blocked the address itself (Twilio's Advanced Opt-Out, ``OptOutType``
  STOP), whatever the words, is an opt-out of the whole channel, not answered by us: the provider
  sends its own confirmation and would refuse ours;
- a number 0–10 answering an NPS survey touch (the most recent sent/delivered touch on that
  channel in the last ``SURVEY_REPLY_WINDOW`` whose template name contains ``nps`` or
  ``survey``) → a ``SurveyAnswer`` and a ``survey.answered`` event; one answer per survey
  touch (the event's external id is ``survey:nps:<touch id>``), a later number is a reply;
- anything else → an outcome ``replied`` and a ``message.replied`` event.

Nothing here logs the sender's number or the text: logs name customer ids only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from channels.optout import (
    DEFAULT_OPT_OUT_KEYWORDS,
    StoredEvent,
    insert_or_ignore,
    is_opt_out,
    normalise_reply,
    outcome_recorded,
    record_event_hook,
    record_opt_out,
)
from store.clock import utcnow
from store.models import Customer, Outcome, SurveyAnswer, Touch, TouchStatus

log = logging.getLogger(__name__)

SURVEY_REPLY_WINDOW = timedelta(days=14)
MAX_STORED_TEXT = 1000
DEFAULT_REGION = "CN"


@dataclass
class InboundResult:
    kind: str  # opted_out | already_opted_out | survey_answered | replied | duplicate | unknown_sender
    customer_ids: list[int] = field(default_factory=list)
    touch_id: int | None = None
    cancelled_touches: int = 0
    moved_touches: int = 0
    events: list[StoredEvent] = field(default_factory=list)
    purpose: str | None = None  # an opt-out: all | marketing
    confirmation: str | None = None  # an opt-out: what the customer is answered on the channel


# How long after a message a keyword reply is taken as answering it (for the purpose it withdraws).
OPT_OUT_REPLY_WINDOW = timedelta(days=30)
_CHANNEL_WORDS = {"zh-CN": {"sms": "短信", "wechat": "微信", "email": "邮件", "push": "App推送"},
                  "en": {"sms": "SMS", "wechat": "WeChat", "email": "e-mail", "push": "app push"}}


def opt_out_confirmation(channel: str, purpose: str, locale: str) -> str:
    """The answer to an opt-out reply: says what was withdrawn and, for marketing, what still comes."""
    lang = "en" if locale.startswith("en") else "zh-CN"
    word = _CHANNEL_WORDS[lang].get(channel, channel)
    if purpose == "marketing":
        if lang == "en":
            return (f"You will no longer receive marketing {word} messages from us. Service messages about your "
                    f"policies and claims (renewal, claims) will still be sent on {word}.")
        return f"您已退订{word}营销信息。保单续保、理赔等服务通知仍将通过{word}发送。"
    if lang == "en":
        return f"You will no longer receive any {word} messages from us."
    return f"您已退订全部{word}消息，我们将不再通过{word}联系您。"


def normalise_sender_phone(raw: str, region: str = DEFAULT_REGION) -> str | None:
    """The sender as E.164 (how ``Customer.phone`` is stored), or None if it is not a phone number."""
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def customers_by_phone(session: Session, raw: str) -> list[Customer]:
    phone = normalise_sender_phone(raw)
    if phone is None:
        return []
    return list(session.exec(select(Customer).where(Customer.phone == phone).order_by(col(Customer.id))))


def customers_by_openid(session: Session, openid: str) -> list[Customer]:
    if not openid:
        return []
    return list(session.exec(select(Customer).where(Customer.wechat_openid == openid).order_by(col(Customer.id))))


def _survey_number(text: str) -> int | None:
    reply = normalise_reply(text)
    if re.fullmatch(r"\d{1,2}", reply):
        number = int(reply)
        if 0 <= number <= 10:
            return number
    return None


def _recent_touch(session: Session, customer_ids: Sequence[int], channel: str, since: datetime,
                  survey_only: bool) -> Touch | None:
    query = select(Touch).where(
        col(Touch.customer_id).in_(customer_ids),
        Touch.channel == channel,
        col(Touch.status).in_([TouchStatus.SENT, TouchStatus.DELIVERED]),
        col(Touch.sent_at) >= since,
    )
    if survey_only:
        name = func.lower(Touch.template)
        query = query.where(or_(name.like("%nps%"), name.like("%survey%")))
    return session.exec(query.order_by(col(Touch.sent_at).desc(), col(Touch.id).desc())).first()


def _opt_out_reply(session: Session, channel: str, customers: Sequence[Customer], ids: list[int], message_id: str,
                   now: datetime, blocked_by_provider: bool) -> InboundResult:
    """An opt-out keyword from everyone at the sender's address; see the module doc."""
    # A reply answers the last message on the channel: to a marketing one it withdraws the
    # marketing consent there only (PIPL Art. 24, consent per purpose); otherwise the channel.
    # A provider that blocked the number itself carries no message of any purpose there any more.
    answered = _recent_touch(session, ids, channel, now - OPT_OUT_REPLY_WINDOW, survey_only=False)
    marketing_only = answered is not None and answered.category == "marketing" and not blocked_by_provider
    purpose = "marketing" if marketing_only else "all"
    touch_id = answered.id if answered is not None else None
    result = InboundResult("duplicate", ids, touch_id=touch_id, purpose=purpose)
    keys = {customer_id: f"optout:{channel}:{message_id}:{customer_id}" for customer_id in ids}
    # The provider repeating the opt-out it answered: the same confirmation again, nothing stored.
    repeated_webhook = any(outcome_recorded(session, key) for key in keys.values())
    for customer_id, key in keys.items():
        done = record_opt_out(session, customer_id, channel, source=f"reply:{channel}", dedup_key=key, at=now,
                              detail={"message_id": message_id, "touch_id": touch_id}, purpose=purpose)
        if done is not None:
            result.kind = "opted_out"
            result.cancelled_touches += done.cancelled_touches
            result.moved_touches += done.moved_touches
            result.events.extend(done.events)
    if result.kind == "opted_out" or repeated_webhook:
        # A provider that blocked the number has sent its own confirmation and would refuse ours.
        if not blocked_by_provider:
            locale = next((c.locale for c in customers if c.id is not None), "zh-CN")
            result.confirmation = opt_out_confirmation(channel, purpose, locale)
        return result
    # Everyone here had opted out of this already (another message id): no second opt-out and no
    # second confirmation; the reply is kept, outside the touch figures and with no event to act on.
    reply = {"dedup_key": f"reply:{channel}:{message_id}", "customer_id": answered.customer_id if answered else ids[0],
             "channel": channel, "kind": "replied", "occurred_at": now,
             "detail": {"message_id": message_id, "opt_out": "already", "purpose": purpose, "touch_id": touch_id}}
    if insert_or_ignore(session, Outcome, reply, "dedup_key"):
        result.kind = "already_opted_out"
        log.info("customer(s) %s repeated an opt-out of %s on %s: recorded as a reply, not confirmed again",
                 ", ".join(map(str, ids)), purpose, channel)
    return result


def handle_inbound_text(
    session: Session,
    *,
    channel: str,
    customers: Sequence[Customer],
    text: str,
    message_id: str,
    received_at: datetime | None = None,
    keywords: Iterable[str] = DEFAULT_OPT_OUT_KEYWORDS,
    blocked_by_provider: bool = False,
) -> InboundResult:
    """Record what ``text`` from ``customers`` (everyone at the sender's address) means; see the module doc.

    ``blocked_by_provider``: the provider has taken ``text`` as an opt-out of its own (one of the
    provider's keywords, which need not be ours) and will deliver nothing more to this address."""
    now = received_at or utcnow()
    ids = [c.id for c in customers if c.id is not None]
    if not ids:
        return InboundResult("unknown_sender")

    if blocked_by_provider or is_opt_out(text, keywords):
        return _opt_out_reply(session, channel, customers, ids, message_id, now, blocked_by_provider)

    since = now - SURVEY_REPLY_WINDOW
    number = _survey_number(text)
    survey = _recent_touch(session, ids, channel, since, survey_only=True) if number is not None else None
    touch = survey or _recent_touch(session, ids, channel, since, survey_only=False)
    customer_id = touch.customer_id if touch is not None else ids[0]
    stored_text = text.strip()[:MAX_STORED_TEXT]

    detail: dict[str, object] = {"message_id": message_id}
    if number is not None and survey is not None:
        detail["nps"] = number
    reply = {
        "dedup_key": f"reply:{channel}:{message_id}",
        "touch_id": touch.id if touch is not None else None,
        "customer_id": customer_id,
        "channel": channel,
        "kind": "replied",
        "detail": detail,
        "occurred_at": now,
    }
    if not insert_or_ignore(session, Outcome, reply, "dedup_key"):
        return InboundResult("duplicate", [customer_id])

    if number is not None and survey is not None and survey.id is not None:
        stored = record_event_hook(
            session,
            customer_id=customer_id,
            type="survey.answered",
            data={"nps": number, "survey": survey.template, "touch_id": survey.id, "channel": channel},
            external_id=f"survey:nps:{survey.id}",
            occurred_at=now,
        )
        if stored is not None:
            session.add(SurveyAnswer(customer_id=customer_id, touch_id=survey.id, kind="nps", score=number,
                                     answered_at=now))
            log.info("customer %s answered NPS survey touch %s", customer_id, survey.id)
            return InboundResult("survey_answered", [customer_id], survey.id, events=[stored])
        # This survey already has its answer: a second number is kept as an ordinary reply.

    stored = record_event_hook(
        session,
        customer_id=customer_id,
        type="message.replied",
        data={"channel": channel, "text": stored_text, "touch_id": touch.id if touch is not None else None},
        external_id=f"reply:{channel}:{message_id}",
        occurred_at=now,
    )
    log.info("customer %s replied on %s", customer_id, channel)
    return InboundResult("replied", [customer_id], touch.id if touch is not None else None,
                         events=[stored] if stored is not None else [])

