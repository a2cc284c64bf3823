"""Rendering a claimed batch with the context built from store rows in a handful of queries.

``channels.rendering.build_context`` looks up a customer's policy, claim, event and
advisor one customer at a time: right for a preview, four queries per message on the
dispatch hot path. Here the same lookups are made once per batch (``IN (…)`` queries)
and the ``TemplateContext`` is assembled from what they returned, with the same
choices: the event named by the touch's occurrence; the policy that event names,
else the active policy expiring next, else the latest; the claim named, else the
latest filed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlmodel import Session, col, select

from channels import rendering
from channels.base import RenderedMessage
from engine.claiming import ClaimedTouch
from engine.paths import templates_dir
from store.clock import to_local
from store.models import AppUser, Claim, Customer, Event, Policy


@lru_cache(maxsize=4)
def _renderer(root: str) -> rendering.Renderer:
    from pathlib import Path

    return rendering.renderer(Path(root))


class StoreRenderer:
    """``engine.dispatch`` renderer over ``channels.rendering`` and the store."""

    def __init__(self, root: str | None = None) -> None:
        self.root = root or str(templates_dir())

    def render_all(
        self, session: Session, touches: Sequence[ClaimedTouch], customers: dict[int, Customer], now: datetime
    ) -> list[RenderedMessage | BaseException]:
        renderer = _renderer(self.root)
        ids = list(customers)
        events: dict[tuple[int, str], Event] = {}
        names = [t.occurrence for t in touches]
        for ev in session.exec(
            select(Event).where(col(Event.customer_id).in_(ids), col(Event.external_id).in_(set(names)))
        ).all():
            events[(ev.customer_id, ev.external_id)] = ev
        policies: dict[int, list[Policy]] = defaultdict(list)
        for p in session.exec(select(Policy).where(col(Policy.customer_id).in_(ids))).all():
            policies[p.customer_id].append(p)
        claims: dict[int, list[Claim]] = defaultdict(list)
        for c in session.exec(select(Claim).where(col(Claim.customer_id).in_(ids))).all():
            claims[c.customer_id].append(c)
        advisor_ids = {c.advisor_id for c in customers.values() if c.advisor_id is not None}
        advisors = (
            {a.id: a for a in session.exec(select(AppUser).where(col(AppUser.id).in_(advisor_ids))).all()}
            if advisor_ids else {}
        )
        out: list[RenderedMessage | BaseException] = []
        for touch, occurrence in zip(touches, names, strict=True):
            customer = customers[touch.customer_id]
            try:
                event = events.get((touch.customer_id, occurrence))
                context = _context(customer, touch, occurrence, event, policies.get(touch.customer_id, []),
                                   claims.get(touch.customer_id, []), advisors, now)
                out.append(renderer.render(touch.template, touch.channel, context))
            except Exception as exc:  # one bad template fails its touch, not the batch
                out.append(exc)
        return out


def _pick_policy(rows: list[Policy], data: dict[str, Any], now: datetime) -> Policy | None:
    if isinstance(data.get("policy_id"), str):
        for p in rows:
            if p.external_id == data["policy_id"]:
                return p
    active = sorted((p for p in rows if p.status == "active" and p.expiry_date >= now.date()),
                    key=lambda p: p.expiry_date)
    if active:
        return active[0]
    return max(rows, key=lambda p: p.expiry_date) if rows else None


def _pick_claim(rows: list[Claim], data: dict[str, Any]) -> Claim | None:
    if isinstance(data.get("claim_id"), str):
        for c in rows:
            if c.external_id == data["claim_id"]:
                return c
    return max(rows, key=lambda c: c.filed_at) if rows else None


def _context(customer: Customer, touch: ClaimedTouch, occurrence: str, event: Event | None, policies: list[Policy],
             claims: list[Claim], advisors: dict[int | None, AppUser], now: datetime) -> rendering.TemplateContext:
    data = event.data if event is not None else {}
    policy = _pick_policy(policies, data, now)
    claim = _pick_claim(claims, data)
    advisor = advisors.get(customer.advisor_id) if customer.advisor_id is not None else None
    link = None
    try:
        link = rendering.unsubscribe_url(customer.external_id, touch.channel)
    except rendering.MissingSecret:
        link = None
    return rendering.TemplateContext(
        customer=rendering.CustomerView(customer.name, customer.tier, customer.locale, customer.branch,
                                        customer.timezone),
        now_local=to_local(now, customer.timezone),
        policy=rendering.PolicyView(policy.product_line, policy.expiry_date, policy.annual_premium,
                                    policy.start_date, policy.status) if policy is not None else None,
        claim=rendering.ClaimView(claim.amount, claim.status, claim.filed_at, claim.settled_at)
        if claim is not None else None,
        event=rendering.EventView(event.type, dict(event.data), event.occurred_at) if event is not None else None,
        advisor_name=(advisor.display_name or advisor.username) if advisor is not None else None,
        journey=rendering.JourneyView(touch.journey_id, touch.step_id, touch.category, occurrence),
        unsubscribe_url=link,
        holiday=rendering._holiday(None, occurrence, data),
    )
