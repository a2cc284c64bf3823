"""Why a task exists: the event, policy or claim that started its journey, as the agent reads it.

A task's ``event_id`` names its event when the planner wrote it; its ``occurrence`` is its
enrollment's: ``event-<id>`` for an event-entry journey (older rows and other systems: the
event's external id), ``policy-<id>-<date>`` for a journey on a
policy date (renewal), ``claim-<id>`` for one on a claim date, anything else a scheduled period
(``2026-11``, ``2026-W48``). ``trigger_of`` finds those rows; the call script is rendered with
them (``console.scripts``) and ``reason_of`` turns them into labelled items for the page.

Free text (complaint text, survey comments) is masked as everywhere else an agent reads it:
phone numbers, ID numbers, e-mail addresses, and the customer's own name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from engine.language.catalogue import EVENT_TYPES
from engine.language.event_types import words_of
from store.masking import mask_name, mask_text
from store.models import AgentTask, Claim, Customer, Event, Policy

_POLICY_OCCURRENCE = re.compile(r"^policy-(\d+)-")
_CLAIM_OCCURRENCE = re.compile(r"^claim-(\d+)$")
_EVENT_OCCURRENCE = re.compile(r"^event-(\d+)$")

# How each event data field is shown (templates/task.html renders each kind); a field config/events.yaml
# words is shown in those words ("value") unless it is listed here.
FIELD_KINDS: dict[str, str] = {
    "text": "quote", "comment": "quote", "amount": "money", "product_line": "product_line",
    "category": "value", "severity": "value", "source": "value", "survey": "value", "direction": "value",
    "platform": "value", "channel": "value", "from_tier": "tier", "to_tier": "tier", "tier": "tier",
    "nps": "nps", "csat": "csat", "risk": "percent", "activity_drop": "percent", "churn_rate": "percent",
    "queue": "queue", "outcome": "outcome", "days_inactive": "number", "score": "number",
    "session_seconds": "number",
}
MAX_TEXT = 1000


@dataclass(frozen=True)
class Trigger:
    """The rows that started the task's journey occurrence (any of them may be None)."""

    event: Event | None = None
    policy: Policy | None = None
    claim: Claim | None = None


@dataclass(frozen=True)
class ReasonItem:
    label: str  # a msgid of console.labels.EVENT_FIELDS (or the field's own name, humanised)
    kind: str  # how to show the value: see FIELD_KINDS, plus "text", "date", "datetime"
    value: Any
    event_type: str | None = None  # whose words a "value" is shown in (config/events.yaml)


@dataclass
class Reason:
    kind: str  # event | policy | claim | schedule
    occurrence: str
    event_type: str | None = None
    occurred_at: datetime | None = None
    items: list[ReasonItem] = field(default_factory=list)


def trigger_of(session: Session, task: AgentTask) -> Trigger:
    occurrence = task.occurrence or ""
    match = _EVENT_OCCURRENCE.match(occurrence)
    event: Event | None = None
    if task.event_id is not None:  # the planner names the event itself (migration 0005)
        event = session.get(Event, task.event_id)
    if event is None and match:
        event = session.get(Event, int(match.group(1)))
    if event is None:
        event = session.exec(
            select(Event).where(Event.external_id == occurrence, Event.customer_id == task.customer_id)
        ).first()
    if event is not None and event.customer_id != task.customer_id:
        event = None  # an id from another customer's occurrence: never show someone else's data
    policy: Policy | None = None
    claim: Claim | None = None
    if event is not None:
        data = event.data or {}
        policy = _named(session, Policy, data.get("policy_id"), task.customer_id)
        claim = _named(session, Claim, data.get("claim_id"), task.customer_id)
    elif (match := _POLICY_OCCURRENCE.match(occurrence)) is not None:
        policy = session.get(Policy, int(match.group(1)))
    elif (match := _CLAIM_OCCURRENCE.match(occurrence)) is not None:
        claim = session.get(Claim, int(match.group(1)))
    if policy is not None and policy.customer_id != task.customer_id:
        policy = None
    if claim is not None and claim.customer_id != task.customer_id:
        claim = None
    if claim is not None and policy is None and claim.policy_id is not None:
        policy = session.get(Policy, claim.policy_id)
    return Trigger(event, policy, claim)


def _named(session: Session, model: type[Policy] | type[Claim], external_id: Any, customer_id: int) -> Any:
    if not isinstance(external_id, str):
        return None
    return session.exec(
        select(model).where(model.external_id == external_id, model.customer_id == customer_id)
    ).first()


def masked(text: Any, customer: Customer, limit: int | None = MAX_TEXT) -> str:
    shown = str(text)
    if customer.name:
        shown = shown.replace(customer.name, mask_name(customer.name))
    return mask_text(shown)[:limit]


def _event_items(event: Event, trigger: Trigger, customer: Customer) -> list[ReasonItem]:
    data = dict(event.data or {})
    known = list(EVENT_TYPES.get(event.type, {}))
    order = [k for k in known if k in data] + sorted(k for k in data if k not in known)
    worded = words_of(event.type)
    items: list[ReasonItem] = []
    for key in order:
        value = data[key]
        if value is None or value == "":
            continue
        kind = FIELD_KINDS.get(key) or ("value" if key in worded else "text")
        if kind in ("quote", "text", "value"):
            value = masked(value, customer)
        items.append(ReasonItem(key, kind, value, event.type))
    if event.type.startswith("claim."):
        if "product_line" not in data and trigger.policy is not None:
            items.append(ReasonItem("product_line", "product_line", trigger.policy.product_line))
        if trigger.claim is not None:
            items.append(ReasonItem("claim_status", "status", trigger.claim.status))
    return items


def reason_of(task: AgentTask, customer: Customer, trigger: Trigger) -> Reason:
    if trigger.event is not None:
        ev = trigger.event
        return Reason("event", task.occurrence, ev.type, ev.occurred_at, _event_items(ev, trigger, customer))
    if trigger.claim is not None:
        c = trigger.claim
        items = [ReasonItem("claim_id", "text", c.external_id), ReasonItem("amount", "money", c.amount)]
        if trigger.policy is not None:
            items.append(ReasonItem("product_line", "product_line", trigger.policy.product_line))
        items.append(ReasonItem("claim_status", "status", c.status))
        if c.settled_at is not None:
            items.append(ReasonItem("settled_at", "datetime", c.settled_at))
        return Reason("claim", task.occurrence, None, c.settled_at or c.filed_at, items)
    if trigger.policy is not None:
        p = trigger.policy
        items = [ReasonItem("policy_id", "text", p.external_id),
                 ReasonItem("product_line", "product_line", p.product_line),
                 ReasonItem("expiry_date", "date", p.expiry_date),
                 ReasonItem("annual_premium", "money", p.annual_premium),
                 ReasonItem("policy_status", "status", p.status)]
        return Reason("policy", task.occurrence, None, None, items)
    return Reason("schedule", task.occurrence)
