"""App push receipts: JPush does not call us back, so the sent push touches are looked up.

``poll_push_receipts`` asks JPush's status API (``channels.push_jpush.JPushAdapter.delivery_status``)
about the push touches sent in the last ``RECEIPT_WINDOW`` that have no final status yet, and
records what it says with ``engine.loop.receipts.apply_receipt``, as a Twilio or WeChat callback
is recorded: 0 → delivered; 2 or 3 (the device is not this app's, or was not a target) → failed,
permanent, and the touch falls back to the next consented channel of its list; 1 (not delivered
yet) and 4 (JPush's system error) change nothing and are asked again on the next poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from channels.push_jpush import DELIVERED, NOT_TARGET, NOT_THIS_APP, JPushAdapter
from engine.loop.receipts import apply_receipt
from store.clock import utcnow
from store.models import Customer, Touch, TouchStatus

log = logging.getLogger(__name__)

RECEIPT_WINDOW = timedelta(days=3)  # after this a push not yet on the device is not asked about again
_FAILED_REASON = {NOT_THIS_APP: "registration id is not a device of this app",
                  NOT_TARGET: "device was not a target of the push"}


@dataclass(frozen=True)
class _Sent:
    touch_id: int
    msg_id: str
    registration_id: str


async def poll_push_receipts(engine: Engine, adapter: JPushAdapter, *, now: datetime | None = None,
                             limit: int = 5000) -> Counter[str]:
    """Look up and record the receipts of sent push touches; counts by what was recorded."""
    moment = now or utcnow()
    sent = await asyncio.to_thread(_sent_touches, engine, moment, limit)
    by_msg: dict[str, list[_Sent]] = defaultdict(list)
    for s in sent:
        by_msg[s.msg_id].append(s)
    answers: dict[str, dict[str, int]] = {}
    for msg_id, items in by_msg.items():
        try:
            answers[msg_id] = await adapter.delivery_status(msg_id, [s.registration_id for s in items])
        except httpx.HTTPError as exc:  # asked again on the next poll
            log.warning("JPush status of message %s unavailable: %s", msg_id, type(exc).__name__)
    return await asyncio.to_thread(_record, engine, by_msg, answers, moment)


def _sent_touches(engine: Engine, now: datetime, limit: int) -> list[_Sent]:
    with Session(engine) as session:
        rows = session.execute(
            select(Touch.id, Touch.provider_message_id, Customer.push_registration_id)
            .join(Customer, col(Customer.id) == Touch.customer_id)
            .where(col(Touch.channel) == "push", col(Touch.status) == TouchStatus.SENT,
                   col(Touch.sent_at) >= now - RECEIPT_WINDOW, col(Touch.provider_message_id).is_not(None))
            .order_by(col(Touch.sent_at)).limit(limit)
        ).all()
    return [_Sent(int(t), str(m), str(r)) for t, m, r in rows if m and r]


def _record(engine: Engine, by_msg: dict[str, list[_Sent]], answers: dict[str, dict[str, int]],
            now: datetime) -> Counter[str]:
    counts: Counter[str] = Counter()
    with Session(engine) as session:
        for msg_id, states in answers.items():
            for s in by_msg[msg_id]:
                state = states.get(s.registration_id)
                if state == DELIVERED:
                    result = apply_receipt(session, provider="jpush", message_id=msg_id, provider_status="delivered",
                                           new_status=TouchStatus.DELIVERED, at=now)
                elif state in _FAILED_REASON:
                    result = apply_receipt(session, provider="jpush", message_id=msg_id,
                                           provider_status=f"status:{state}", new_status=TouchStatus.FAILED,
                                           error_code=f"jpush_status:{state}", error_reason=_FAILED_REASON[state],
                                           error_class="permanent", at=now)
                else:
                    counts["pending"] += 1
                    continue
                counts[result.outcome] += 1
        session.commit()
    return counts
