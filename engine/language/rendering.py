"""Rendering for a customer in the store: the context from their rows, and the cached renderer.

``build_context`` reads what a touch's template may see (policy, claim, event, advisor,
holiday, signed opt-out link) one customer at a time: right for a preview, the CLI and the
console's call scripts (dispatch does the same lookups a batch at a time in
``engine.sending.render_batch``, through ``context_from_rows``). ``render`` and
``render_task_script`` render with a ``Renderer`` cached per templates folder.

The template core (``engine.language.templates``, ``engine.language.template_context``) and
the check of every template (``engine.language.template_check``) need no database; their
public names are importable from here too, as callers have always imported them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlmodel import Session, col, select

from channels.base import RenderedMessage
from channels.optout import MissingSecret, unsubscribe_url
from channels.template_files import LOCALES
from engine.language.catalogue import HOLIDAYS
from engine.language.event_types import EventTypeSpec, words_of
from engine.language.paths import templates_dir
from engine.language.template_check import check_templates
from engine.language.template_context import (
    ClaimView,
    CustomerView,
    EventView,
    HolidayView,
    JourneyView,
    PolicyView,
    TemplateContext,
    sample_context,
)
from engine.language.templates import (
    RENDER_CHANNELS,
    Renderer,
    RenderError,
    TemplateMeta,
    marketing_footer,
    with_footer,
)
from store.clock import as_utc, to_local, utcnow
from store.masking import mask_name, mask_text
from store.models import AppUser, Claim, Customer, Enrollment, Event, Policy, Touch

RowT = TypeVar("RowT", Policy, Claim)
OwnedT = TypeVar("OwnedT", Policy, Claim, Event)

__all__ = [
    "LOCALES",
    "RENDER_CHANNELS",
    "ClaimView",
    "CustomerView",
    "EventView",
    "HolidayView",
    "JourneyView",
    "PolicyView",
    "RenderError",
    "Renderer",
    "TemplateContext",
    "TemplateMeta",
    "build_context",
    "check_templates",
    "context_from_rows",
    "event_after_wait",
    "holiday_view",
    "marketing_footer",
    "masked_context",
    "render",
    "render_task_script",
    "renderer",
    "row_of_occurrence",
    "sample_context",
    "signed_unsubscribe_link",
    "wechat_template_data",
    "with_footer",
]


def build_context(
    session: Session,
    customer: Customer,
    *,
    touch: Touch | None = None,
    event: Event | None = None,
    policy: Policy | None = None,
    claim: Claim | None = None,
    channel: str | None = None,
    now: datetime | None = None,
    unsubscribe_link: str | None = None,
    holiday: str | None = None,
    masked: bool = False,
) -> TemplateContext:
    """The template context for ``customer`` from store rows.

    What is not passed is looked up: the event is the one the touch's enrollment last waited for
    (``event_after_wait``), else the touch's occurrence when that names an event (event-entry
    journeys); the policy is the one the events name (``policy_id``), else the one the occurrence
    names (a policy date entry), else the customer's active policy expiring next, else their
    latest; the claim likewise (``claim_id``, the occurrence's, else the latest settled or filed).
    The unsubscribe link is signed for the touch's channel (``channel`` overrides) when
    ``JOURNEYS_SECRET_KEY`` is set. The holiday (``holiday``, a catalogue key) is otherwise read
    from the event data (``holiday``) or the touch's occurrence: a holiday key in it, or an ISO
    date that is a Chinese public holiday. ``masked``: the customer's personal data masked in the context
    itself (``masked_context``), for a preview a person reads, whatever filter a template uses.
    """
    if customer.id is None:
        raise ValueError("build_context needs a stored customer")
    now = now or utcnow()
    occurrence_data: dict[str, Any] = {}
    if event is None and touch is not None and touch.occurrence:
        entry_id = row_of_occurrence(touch.occurrence, "event")
        if entry_id is not None:  # an event entry's occurrence, event-<id>
            event = _customers_row(session, Event, entry_id, customer.id)
        else:
            event = session.exec(
                select(Event).where(Event.external_id == touch.occurrence, Event.customer_id == customer.id)
            ).first()
        occurrence_data = event.data if event is not None else {}
        waited = session.exec(
            select(Event).join(Enrollment, col(Enrollment.scope_event_id) == col(Event.id)).where(
                Enrollment.customer_id == customer.id, Enrollment.journey_id == touch.journey_id,
                Enrollment.occurrence == touch.occurrence)
        ).first()
        event = event_after_wait(event, waited, touch.due_at)
    # What the waited event does not name, the entry's event may (a claim.filed's claim_id).
    data = {**occurrence_data, **(event.data if event is not None else {})}
    occurrence = touch.occurrence if touch is not None else None
    if policy is None:
        policy = _named_row(session, Policy, data.get("policy_id"), occurrence, "policy", customer.id)
        if policy is None:
            policy = session.exec(
                select(Policy)
                .where(Policy.customer_id == customer.id, Policy.status == "active", Policy.expiry_date >= now.date())
                .order_by(col(Policy.expiry_date))
            ).first() or session.exec(
                select(Policy).where(Policy.customer_id == customer.id).order_by(col(Policy.expiry_date).desc())
            ).first()
    if claim is None:
        claim = _named_row(session, Claim, data.get("claim_id"), occurrence, "claim", customer.id)
        if claim is None:
            claim = session.exec(
                select(Claim).where(Claim.customer_id == customer.id).order_by(col(Claim.filed_at).desc())
            ).first()
    advisor = session.get(AppUser, customer.advisor_id) if customer.advisor_id is not None else None
    journey = None
    if touch is not None:
        journey = JourneyView(touch.journey_id, touch.step_id, touch.category, touch.occurrence)
    link = unsubscribe_link
    link_channel = channel or (touch.channel if touch is not None else None)
    if link is None and link_channel:
        link = signed_unsubscribe_link(customer, link_channel)
    context = context_from_rows(customer, now, policy=policy, claim=claim, event=event, advisor=advisor,
                                journey=journey, unsubscribe_link=link,
                                holiday=holiday_view(holiday, occurrence, data))
    return masked_context(context) if masked else context


_OCCURRENCE_ROW = re.compile(r"^(policy|claim|event)-(\d+)(?:-|$)")


def row_of_occurrence(occurrence: str | None, kind: str) -> int | None:
    """The id of the row an occurrence is about: the entry event (``event-<id>``), or the policy
    (``policy-<id>-…``) or claim (``claim-<id>``) of a date entry, so that a customer with several
    policies gets the one the journey fired on, not the one expiring next."""
    match = _OCCURRENCE_ROW.match(occurrence or "")
    return int(match.group(2)) if match is not None and match.group(1) == kind else None


def event_after_wait(entry: Event | None, waited: Event | None, due_at: datetime) -> Event | None:
    """The event a touch renders with: the one the enrollment's last ``wait_for`` ended on
    (``Enrollment.scope_event_id``, what the planner's conditions read after it), else the entry's.

    A waited event after the touch was due is a later ``wait_for``'s (the enrollment moved on
    before this touch went out): it is not this touch's, which keeps the entry's event."""
    if waited is not None and waited.occurred_at is not None and as_utc(waited.occurred_at) <= as_utc(due_at):
        return waited
    return entry


def _named_row(session: Session, model: type[RowT], external_id: Any, occurrence: str | None, kind: str,
               customer_id: int) -> RowT | None:
    """The customer's policy or claim the event data names (``external_id``), else the one the
    touch's occurrence names (``row_of_occurrence``)."""
    row = _named_by_event(session, model, external_id, customer_id)
    named = row_of_occurrence(occurrence, kind)
    if row is None and named is not None:
        row = _customers_row(session, model, named, customer_id)
    return row


def _customers_row(session: Session, model: type[OwnedT], row_id: int, customer_id: int) -> OwnedT | None:
    """The row ``row_id`` if it is this customer's: an id read from an occurrence or event names no customer."""
    row = session.get(model, row_id)
    return row if row is not None and row.customer_id == customer_id else None


def _named_by_event(session: Session, model: type[RowT], external_id: Any, customer_id: int) -> RowT | None:
    """The customer's policy or claim an event's data names by its external id, if it names one."""
    if not isinstance(external_id, str):
        return None
    return session.exec(
        select(model).where(model.external_id == external_id, model.customer_id == customer_id)
    ).first()


def context_from_rows(customer: Customer, now: datetime, *, policy: Policy | None, claim: Claim | None,
                      event: Event | None, advisor: AppUser | None, journey: JourneyView | None,
                      unsubscribe_link: str | None, holiday: HolidayView | None,
                      event_types: Mapping[str, EventTypeSpec] | None = None) -> TemplateContext:
    """The context of the rows chosen for it, however they were looked up (here one customer at
    a time, or a whole batch at once in ``engine.sending.render_batch``). ``event_types``: the
    types the event's words are taken from, read once for a batch (else when rendering)."""
    return TemplateContext(
        customer=CustomerView(customer.name, customer.tier, customer.locale, customer.branch, customer.timezone,
                              customer.external_id),
        now_local=to_local(now, customer.timezone),
        policy=PolicyView(policy.product_line, policy.expiry_date, policy.annual_premium, policy.start_date,
                          policy.status, policy.premium_due_date, policy.grace_period_end)
        if policy is not None else None,
        claim=ClaimView(claim.amount, claim.status, claim.filed_at, claim.settled_at) if claim is not None else None,
        event=EventView(event.type, dict(event.data), event.occurred_at,
                        words_of(event.type, event_types) if event_types is not None else None)
        if event is not None else None,
        advisor_name=(advisor.display_name or advisor.username) if advisor is not None else None,
        journey=journey,
        unsubscribe_url=unsubscribe_link,
        holiday=holiday,
    )


def masked_context(context: TemplateContext) -> TemplateContext:
    """``context`` with the customer's personal data masked at the source, for a preview a person reads.

    Masking the rendered text afterwards misses every encoding a template can choose (``tojson``
    writes 刘雷 as ``\\u5218\\u96f7``, ``list`` and ``join`` split it): here the name is masked as
    the preview's header shows it (刘*), and the event's free text (a complaint's words, a reply)
    has its phone numbers, e-mail addresses, ID numbers and the customer's name masked, so no
    filter can show what the template never receives."""
    name = context.customer.name
    customer = replace(context.customer, name=mask_name(name))
    event = context.event
    if event is not None:
        event = replace(event, data=_masked_data(event.data, name))
    return replace(context, customer=customer, event=event)


def _masked_data(value: Any, name: str) -> Any:
    if isinstance(value, str):
        return mask_text(value.replace(name, mask_name(name)) if name else value)
    if isinstance(value, Mapping):
        return {key: _masked_data(item, name) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked_data(item, name) for item in value]
    return value


def signed_unsubscribe_link(customer: Customer, channel: str) -> str | None:
    """The customer's opt-out link for ``channel``; None when none can be signed (no ``JOURNEYS_SECRET_KEY``)."""
    try:
        return unsubscribe_url(customer.external_id, channel)
    except MissingSecret:
        return None


def holiday_view(key: str | None, occurrence: str | None, data: dict[str, Any]) -> HolidayView | None:
    """The holiday ``key`` names, else the event data's ``holiday``, else the one the occurrence
    names or falls on (see ``build_context``)."""
    if key is None and isinstance(data.get("holiday"), str):
        key = data["holiday"]
    day: date | None = None
    if occurrence:
        match = re.search(r"\d{4}-\d{2}-\d{2}", occurrence)
        if match:
            try:
                day = date.fromisoformat(match.group(0))
            except ValueError:
                day = None
        if key is None:
            key = next((k for k in HOLIDAYS if k in occurrence), None)
        if key is None and day is not None:
            import holidays

            name = holidays.country_holidays("CN", years=day.year, language="en_US").get(day)
            key = next((k for k, v in HOLIDAYS.items() if name and v in name), None)
    return HolidayView(key, day) if key else None


def wechat_template_data(message: RenderedMessage) -> dict[str, dict[str, str]]:
    """The ``data`` object of a WeChat template-message send: ``{"first": {"value": "..."}, ...}``."""
    return {key: {"value": value} for key, value in message.wechat_data.items()}


# --- module-level entry points ---------------------------------------------------------------------

_renderers: dict[tuple[str, str | None, str | None], Renderer] = {}
_lock = threading.Lock()


def renderer(root: Path | None = None, footer: str | None = None, *,
             configured_footer: str | None = None) -> Renderer:
    """A cached Renderer for ``root`` (default: ``templates/`` or ``JOURNEYS_TEMPLATES_DIR``); see ``Renderer``
    for the two footers."""
    root = root or templates_dir()
    key = (str(root.resolve()), footer, configured_footer)
    with _lock:
        if key not in _renderers:
            _renderers[key] = Renderer(root, footer, configured_footer=configured_footer)
        return _renderers[key]


def render(template: str, channel: str, context: TemplateContext, *, locale: str | None = None,
           root: Path | None = None) -> RenderedMessage:
    """Render ``template`` for ``channel`` (sms | wechat | email); raises RenderError."""
    return renderer(root).render(template, channel, context, locale)


def render_task_script(template: str, context: TemplateContext, *, locale: str | None = None,
                       root: Path | None = None) -> str:
    """The agent's call script (``task.<locale>.j2``) for this context; raises RenderError."""
    return renderer(root).render_task_script(template, context, locale)
