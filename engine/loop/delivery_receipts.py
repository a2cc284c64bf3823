"""Delivery receipts: a provider's report on a message moves its touch forward and is an event.

A receipt moves a touch forward only (sent → delivered | failed; a late 'sent' does not undo
'delivered'), and the final receipt that settles it is one ``Outcome`` keyed
``<provider>:<id>:<status>``: a repeated callback changes nothing, and a final receipt for a touch
already settled (a 'failed' after 'delivered', a 'read' after it) is answered ``unchanged`` and
leaves no outcome, so a touch is counted once, as its first final receipt said; a message's receipt after
its own final one moved the touch to another channel changes nothing either. A permanent
delivery failure moves the touch to the next consented, reachable channel of its fallback list
(due now), the choice dispatch makes for a permanent send error (``channels.routing.first_usable``).
A final receipt that settles the touch is also a ``message.delivered`` or ``message.failed`` event
(once, keyed like its outcome), which the webhook hands to the event path after its transaction
commits: a journey waiting for it moves on at once.

A WeChat template-send result can come before dispatch has written the message id to its touch:
dispatch records a batch once every send of it is answered, WeChat pushes the result within
seconds, and unlike Twilio's callback URL (``touch_key``) the push names nothing of ours. Such a
receipt is parked (an outcome ``receipt_parked`` on no touch) and applied once a touch carries its
id (``apply_parked_receipts``, run by the outcome-ingest flow); one still unmatched after
``PARKED_FOR`` is another sender's message on the same official account and is dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, update
from sqlmodel import Session, col, select

from channels.optout import StoredEvent, insert_or_ignore, outcome_recorded, record_event_hook, touch_outcome
from channels.routing import can_use, first_usable
from store.clock import utcnow
from store.masking import mask_text
from store.models import Customer, Outcome, Touch, TouchStatus

log = logging.getLogger(__name__)

# Statuses a receipt may move a touch from. 'planned' is there for sent/delivered: a touch
# put back for a retry after a lost reply was in fact accepted, and must not go out twice.
_FORWARD_FROM: dict[str, tuple[str, ...]] = {
    TouchStatus.SENT: (TouchStatus.PLANNED, TouchStatus.SENDING),
    TouchStatus.DELIVERED: (TouchStatus.PLANNED, TouchStatus.SENDING, TouchStatus.SENT),
    TouchStatus.FAILED: (TouchStatus.SENDING, TouchStatus.SENT),
}


# How long a receipt for a message no touch carries is kept for dispatch to record the message: a batch
# is recorded within minutes, and what is still unmatched is another sender's (kept no longer than needed,
# since every outcome-ingest run reads what is parked).
PARKED = "receipt_parked"
PARKED_FOR = timedelta(hours=1)


# --- applying a receipt ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptResult:
    outcome: str  # applied | duplicate | unchanged | unknown_message | parked | fell_back | anonymised
    touch_id: int | None = None
    status: str | None = None
    events: list[StoredEvent] = field(default_factory=list)  # to act on once the transaction commits


def _find_touch(session: Session, message_id: str, touch_key: str | None) -> tuple[Touch | None, bool]:
    """The receipt's touch, and whether it was found by ``touch_key`` rather than by the message id."""
    touch = session.exec(select(Touch).where(Touch.provider_message_id == message_id)).first()
    if touch is None and touch_key:
        # The receipt can beat dispatch's write of the provider id; the key comes from the
        # signed callback URL. A touch already carrying another id belongs to another attempt.
        touch = session.exec(
            select(Touch).where(
                Touch.key == touch_key,
                or_(col(Touch.provider_message_id).is_(None), col(Touch.provider_message_id) == message_id),
            )
        ).first()
        return touch, touch is not None
    return touch, False


def _message_settled(session: Session, provider: str, message_id: str) -> bool:
    """Whether a final receipt of this message is recorded (its outcome, keyed ``<provider>:<id>:<status>``)."""
    prefix = f"{provider}:{message_id}:"
    found = session.exec(select(Outcome.id).where(col(Outcome.dedup_key).startswith(prefix, autoescape=True)))
    return found.first() is not None


def _not_applied(session: Session, touch: Touch, outcome: dict[str, Any] | None,
                 provider_status: str) -> ReceiptResult:
    """A receipt that did not move the touch: a repeat of the one that did (``duplicate``), or one
    the touch is past (a late 'sent', or a final status contradicting the one it has), which leaves
    no outcome: the touch's figures follow its first final receipt only."""
    if outcome is not None and outcome_recorded(session, outcome["dedup_key"]):
        return ReceiptResult("duplicate", touch.id, touch.status)
    if outcome is not None:
        log.info("touch %s is %s already: a %r receipt for it changes nothing", touch.id, touch.status,
                 provider_status)
    return ReceiptResult("unchanged", touch.id, touch.status)


def apply_receipt(
    session: Session,
    *,
    provider: str,
    message_id: str,
    provider_status: str,
    new_status: str | None,
    touch_key: str | None = None,
    error_code: str | None = None,
    error_reason: str | None = None,
    error_class: str | None = None,
    at: datetime | None = None,
    park_unknown: bool = False,
) -> ReceiptResult:
    """Record one delivery receipt: outcome once per (message, status), touch status forward only.

    ``park_unknown``: a receipt for a message no touch carries yet is kept to be applied later (see
    the module doc), for a provider whose receipts name nothing else of ours."""
    now = at or utcnow()
    # A provider's reason quotes the address or number it refused (a bounce's "<wang@...>: rejected"),
    # and the touch, its outcome and a parked receipt are read by people: masked before any of them.
    error_reason = mask_text(error_reason) if error_reason else error_reason
    touch, by_key = _find_touch(session, message_id, touch_key)
    if touch is None or touch.id is None:
        if park_unknown and new_status is not None:
            receipt = {"provider": provider, "message_id": message_id, "provider_status": provider_status,
                       "new_status": new_status, "error_code": error_code, "error_reason": error_reason,
                       "error_class": error_class}
            insert_or_ignore(session, Outcome, {
                "dedup_key": f"parked:{provider}:{message_id}:{provider_status}"[:255], "kind": PARKED,
                "detail": {k: v for k, v in receipt.items() if v is not None}, "occurred_at": now}, "dedup_key")
            return ReceiptResult("parked")
        return ReceiptResult("unknown_message")
    if new_status is None:
        return ReceiptResult("unchanged", touch.id, touch.status)
    if session.exec(select(Customer.anonymised_at).where(Customer.id == touch.customer_id)).first() is not None:
        # Purged (store.retention): a late receipt, found by the key in its callback URL, would write the
        # provider's id of her message back, and an outcome and an event keyed by it.
        return ReceiptResult("anonymised", touch.id, touch.status)

    final = new_status in (TouchStatus.DELIVERED, TouchStatus.FAILED)
    outcome: dict[str, Any] | None = None
    if final:
        detail: dict[str, Any] = {"provider": provider, "provider_message_id": message_id, "status": provider_status}
        if new_status == TouchStatus.FAILED:
            detail.update({"error_code": error_code, "reason": error_reason, "error_class": error_class})
        outcome = touch_outcome(touch, new_status, f"{provider}:{message_id}:{provider_status}", detail, now)
    if by_key and _message_settled(session, provider, message_id):
        # Found by its key with no provider id, the touch is on a later attempt: this message's own final
        # receipt failed it over to its next channel. A late 'sent' or 'delivered' of the message applied
        # to it marked the fallback sent or delivered, which then never went out, on the wrong channel.
        return _not_applied(session, touch, outcome, provider_status)

    guard = (
        col(Touch.id) == touch.id,
        col(Touch.status).in_(_FORWARD_FROM[new_status]),
        or_(col(Touch.provider_message_id).is_(None), col(Touch.provider_message_id) == message_id),
    )
    values: dict[str, Any] = {"status": new_status, "provider_message_id": message_id}
    if new_status in (TouchStatus.SENT, TouchStatus.DELIVERED):
        values["sent_at"] = touch.sent_at or now
    if new_status == TouchStatus.DELIVERED:
        values["delivered_at"] = now
    if new_status == TouchStatus.FAILED:
        values.update(error_class=error_class, error_reason=(error_reason or "")[:255] or None)
        customer = session.get(Customer, touch.customer_id) if error_class == "permanent" else None
        found = (first_usable(touch.fallback_channels, lambda channel: can_use(customer, channel))
                 if customer is not None else None)
        if found is not None:
            # The choice dispatch makes for a permanent send error (channels.routing): the next
            # consented, reachable channel of the touch's list, due now, attempts counted afresh.
            values.update(
                status=TouchStatus.PLANNED, channel=found[0], fallback_channels=found[1], attempts=0,
                next_attempt_at=now, provider_message_id=None, claimed_by=None, sent_at=None,
            )
    changed = session.execute(update(Touch).where(*guard).values(**values)).rowcount  # type: ignore[attr-defined]
    if not changed:
        return _not_applied(session, touch, outcome, provider_status)
    if outcome is not None:
        # Written only once the receipt has moved the touch (the guarded update is the lock), so a
        # touch has one final outcome: a late "failed" after "delivered" must not count it twice.
        insert_or_ignore(session, Outcome, outcome, "dedup_key")
    if values["status"] == TouchStatus.PLANNED:
        log.info("touch %s: permanent %s delivery failure, falling back to %s", touch.id, provider, values["channel"])
        return ReceiptResult("fell_back", touch.id, TouchStatus.PLANNED)
    result = ReceiptResult("applied", touch.id, new_status)
    if new_status in (TouchStatus.DELIVERED, TouchStatus.FAILED):
        stored = record_event_hook(
            session, customer_id=touch.customer_id, type=f"message.{new_status}",
            data={k: v for k, v in {"channel": touch.channel, "touch_id": touch.id, "journey": touch.journey_id,
                                    "step": touch.step_id, "occurrence": touch.occurrence,
                                    "error_class": error_class}.items() if v is not None},
            # The outcome's key: one event per final receipt, however often the provider repeats it.
            external_id=f"receipt:{provider}:{message_id}:{provider_status}"[:128], occurred_at=now)
        if stored is not None:
            result.events.append(stored)
    return result


def apply_parked_receipts(session: Session, now: datetime | None = None) -> tuple[int, int, list[StoredEvent]]:
    """Apply each parked receipt whose message id a touch now carries, as it would have been on arrival,
    and drop those unmatched for ``PARKED_FOR``: (applied, dropped, events to act on after commit)."""
    expired = session.execute(delete(Outcome).where(
        col(Outcome.kind) == PARKED, col(Outcome.occurred_at) < (now or utcnow()) - PARKED_FOR))
    dropped = int(expired.rowcount)  # type: ignore[attr-defined]
    parked = list(session.exec(select(Outcome).where(Outcome.kind == PARKED).order_by(col(Outcome.id))))
    ids = sorted({str(row.detail.get("message_id", "")) for row in parked})
    recorded: set[str] = set()
    for start in range(0, len(ids), 500):  # one query per 500 ids, within every database's bound on parameters
        recorded.update(str(i) for i in session.exec(
            select(Touch.provider_message_id).where(col(Touch.provider_message_id).in_(ids[start:start + 500]))))
    applied = 0
    events: list[StoredEvent] = []
    for row in parked:
        receipt = row.detail
        if str(receipt.get("message_id", "")) not in recorded:
            continue
        result = apply_receipt(
            session, provider=str(receipt["provider"]), message_id=str(receipt["message_id"]),
            provider_status=str(receipt["provider_status"]), new_status=str(receipt["new_status"]),
            error_code=receipt.get("error_code"), error_reason=receipt.get("error_reason"),
            error_class=receipt.get("error_class"), at=row.occurred_at)
        events.extend(result.events)
        applied += 1
        session.delete(row)
    if applied or dropped:
        log.info("parked delivery receipts: %d applied, %d unmatched for %s dropped", applied, dropped, PARKED_FOR)
    return applied, dropped, events
