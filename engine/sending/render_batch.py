"""Rendering a claimed batch with the context built from store rows in a handful of queries.

``engine.language.rendering.build_context`` looks up a customer's policy, claim, event and
advisor one customer at a time: right for a preview, four queries per message on the
dispatch hot path. Here the same lookups are made once per batch (``IN (…)`` queries)
and the ``TemplateContext`` is assembled from what they returned, with the same
choices: the event named by the touch's occurrence; the policy that event names,
else the active policy expiring next, else the latest; the claim named, else the
latest filed.

The file work is per batch too: ``engine.language.rendering.Renderer`` reads and parses a
template's ``meta.yaml``, checks its locale files, re-reads the footer configuration,
stats each Jinja template for changes and compiles every WeChat field string, all once
per *message* (right for a preview). ``BatchRenderer`` does each of those once per
batch, so an edited template still takes effect from the next batch on.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml
from sqlmodel import Session, col, select

from channels.base import RenderedMessage
from channels.template_files import template_file
from engine.language import rendering
from engine.language.paths import templates_dir
from engine.sending.claiming import ClaimedTouch
from store.clock import to_local
from store.models import AppUser, Claim, Customer, Event, Policy


class BatchRenderer(rendering.Renderer):
    """``rendering.Renderer`` with its file lookups cached for the duration of one batch.

    ``render`` and ``_wechat`` follow the parent's line for line, taking meta, locale
    choice, footer, WeChat field files and compiled strings from per-batch caches; the
    Jinja environments stop checking file times per render (``auto_reload``) and drop
    their compiled templates at each ``begin_batch`` instead.
    """

    def __init__(self, root: Path, footer: str | None = None) -> None:
        super().__init__(root, footer)
        for env in (self.plain, self.escaped):
            env.auto_reload = False
        self._meta: dict[str, rendering.TemplateMeta | ValueError] = {}
        self._locale: dict[tuple[str, str, str], str | rendering.RenderError] = {}
        self._footers: dict[str, str] = {}
        self._fields: dict[tuple[str, str], tuple[Path, str, Any]] = {}
        self._strings: dict[str, jinja2.Template] = {}

    def begin_batch(self) -> None:
        """Forget everything read from disk: what changed since the last batch is read again."""
        for env in (self.plain, self.escaped):
            if env.cache is not None:
                env.cache.clear()
        self._meta.clear()
        self._locale.clear()
        self._footers.clear()
        self._fields.clear()
        self._strings.clear()

    def _load_meta(self, template: str) -> rendering.TemplateMeta:
        meta = self._meta.get(template)
        if meta is None:
            try:
                meta = rendering.load_meta(self.root, template)
            except ValueError as exc:
                meta = exc
            self._meta[template] = meta
        if isinstance(meta, ValueError):
            raise meta
        return meta

    def pick_locale(self, template: str, kind: str, wanted: str) -> str:
        key = (template, kind, wanted)
        chosen = self._locale.get(key)
        if chosen is None:
            try:
                chosen = super().pick_locale(template, kind, wanted)
            except rendering.RenderError as exc:
                chosen = exc
            self._locale[key] = chosen
        if isinstance(chosen, rendering.RenderError):
            raise chosen
        return chosen

    def footer(self, locale: str) -> str:
        text = self._footers.get(locale)
        if text is None:
            text = self._footers[locale] = super().footer(locale)
        return text

    def render(self, template: str, channel: str, context: rendering.TemplateContext,
               locale: str | None = None) -> RenderedMessage:
        if channel not in rendering.RENDER_CHANNELS:
            return super().render(template, channel, context, locale)  # raises the parent's error
        try:
            meta = self._load_meta(template)
        except ValueError as exc:
            raise rendering.RenderError(template, channel, locale or context.locale, str(exc)) from None
        chosen = self.pick_locale(template, channel, locale or context.locale)
        variables = context.variables(chosen)
        if channel == "sms":
            return self._sms(meta, chosen, variables)
        if channel == "email":
            return self._email(meta, chosen, variables)
        return self._wechat(meta, chosen, variables)

    def _wechat(self, meta: rendering.TemplateMeta, locale: str, variables: dict[str, Any]) -> RenderedMessage:
        cached = self._fields.get((meta.name, locale))
        if cached is None:
            path = template_file(self.root, meta.name, "wechat", locale)
            source = path.read_text(encoding="utf-8")
            try:
                fields: Any = yaml.safe_load(source) or {}
            except yaml.YAMLError as exc:
                fields = rendering.RenderError(meta.name, "wechat", locale, f"YAML: {exc}")
            cached = self._fields[(meta.name, locale)] = (path, source, fields)
        path, source, fields = cached
        if isinstance(fields, rendering.RenderError):
            raise fields
        if not isinstance(fields, dict) or not all(isinstance(v, str | int | float) for v in fields.values()):
            raise rendering.RenderError(meta.name, "wechat", locale,
                                        f"{path.name} must map each field name to a string")
        if not meta.wechat_template_id:
            raise rendering.RenderError(meta.name, "wechat", locale, "meta.yaml has no wechat.template_id")
        data: dict[str, str] = {}
        for key, value in fields.items():
            data[str(key)] = self._string(meta.name, "wechat", locale, str(value), variables, path, source, key).strip()
        url = self._string(meta.name, "wechat", locale, meta.wechat_url, variables, path, source, "url").strip()
        return RenderedMessage(channel="wechat", template=meta.name, locale=locale,
                               wechat_template_id=meta.wechat_template_id, wechat_url=url, wechat_data=data)

    def _string(self, name: str, kind: str, locale: str, source: str, variables: dict[str, Any], path: Path,
                file_text: str, key: Any) -> str:
        compiled = self._strings.get(source) if source else None
        if compiled is None:
            # Compiled once per batch instead of once per field of every message; a string
            # that does not compile goes to the parent, which names the file, line and field.
            try:
                compiled = self._strings[source] = self.plain.from_string(source)
            except Exception:
                return super()._string(name, kind, locale, source, variables, path, file_text, key)
        try:
            return compiled.render(variables)
        except Exception:
            return super()._string(name, kind, locale, source, variables, path, file_text, key)


_lock = threading.Lock()


@lru_cache(maxsize=4)
def _renderer(root: str) -> BatchRenderer:
    return BatchRenderer(Path(root))


class StoreRenderer:
    """``engine.sending.dispatch`` renderer over ``engine.language.rendering`` and the store."""

    def __init__(self, root: str | None = None) -> None:
        self.root = root or str(templates_dir())

    def render_all(
        self, session: Session, touches: Sequence[ClaimedTouch], customers: dict[int, Customer], now: datetime
    ) -> list[RenderedMessage | BaseException]:
        renderer = _renderer(self.root)
        ids = list(customers)
        holidays: dict[tuple[str, Any], rendering.HolidayView | None] = {}
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
        # The renderer's per-batch caches are shared: batches of concurrent lanes take turns.
        with _lock:
            renderer.begin_batch()
            for touch, occurrence in zip(touches, names, strict=True):
                customer = customers[touch.customer_id]
                try:
                    event = events.get((touch.customer_id, occurrence))
                    context = _context(customer, touch, occurrence, event, policies.get(touch.customer_id, []),
                                       claims.get(touch.customer_id, []), advisors, now, holidays)
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
             claims: list[Claim], advisors: dict[int | None, AppUser], now: datetime,
             holidays: dict[tuple[str, Any], rendering.HolidayView | None]) -> rendering.TemplateContext:
    data = event.data if event is not None else {}
    # Which holiday an occurrence falls on depends on it and the event's "holiday" only, and
    # looking it up builds a holiday calendar: once per batch per occurrence.
    named = data.get("holiday")
    holiday_key = (occurrence, named if isinstance(named, str) else None)
    if holiday_key not in holidays:
        holidays[holiday_key] = rendering._holiday(None, occurrence, data)
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
        holiday=holidays[holiday_key],
    )
