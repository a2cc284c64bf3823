"""Rendering a claimed batch with the context built from store rows in a handful of queries.

``engine.language.rendering.build_context`` looks up a customer's policy, claim, event and
advisor one customer at a time: right for a preview, four queries per message on the
dispatch hot path. Here the same lookups are made once per batch (``IN (…)`` queries)
and the ``TemplateContext`` is assembled from what they returned, with the same
choices: the event the enrollment's last ``wait_for`` ended on, else the one the touch's
occurrence names; the policy that event names, else the one the occurrence names, else the
active policy expiring next, else the latest; the claim likewise, else the latest filed.

The file work is per batch too: ``engine.language.templates.Renderer`` reads and parses a
template's ``meta.yaml``, checks its locale files, re-reads the footer configuration,
stats each Jinja template for changes and compiles every WeChat field string, all once
per *message* (right for a preview). ``BatchRenderer`` does each of those once per
batch, so an edited template still takes effect from the next batch on.

A part of the context (policy, claim, event, advisor, holiday, journey, the signed opt-out link)
is looked up and built only for the templates whose files name it (``parts_named``): a batch of a
weekly greeting reads no policy, claim or event row at all.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar, cast

import jinja2
from jinja2.runtime import new_context
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from channels.base import RenderedMessage
from channels.template_files import FILE_FOR
from engine.language import event_types
from engine.language.event_types import EventTypeSpec
from engine.language.rendering import (
    context_from_rows,
    event_after_wait,
    holiday_view,
    row_of_occurrence,
    signed_unsubscribe_link,
)
from engine.language.template_context import HolidayView, JourneyView, TemplateContext
from engine.language.template_review import InForceTemplates
from engine.language.templates import Renderer, RenderError, TemplateMeta, collect_bounded
from engine.sending.claiming import ClaimedTouch
from store.models import AppUser, Claim, Customer, Enrollment, Event, Policy

KeyT = TypeVar("KeyT")
ValueT = TypeVar("ValueT")
ErrorT = TypeVar("ErrorT", bound=Exception)
RowT = TypeVar("RowT", Policy, Claim)


class BatchRenderer(Renderer):
    """``Renderer`` with its file lookups cached for the duration of one batch.

    Meta, locale choice, footer, WeChat field files, template files and compiled strings
    come from per-batch caches; the Jinja environments stop checking file times per render
    (``auto_reload``) and drop their compiled templates at each ``begin_batch`` instead.
    """

    def __init__(self, root: Path, footer: str | None = None, *, configured_footer: str | None = None) -> None:
        super().__init__(root, footer, auto_reload=False, configured_footer=configured_footer)
        for env in (self.plain, self.escaped):
            env.bytecode_cache = _CompiledCode()
        self._meta: dict[str, TemplateMeta | ValueError] = {}
        self._locale: dict[tuple[str, str, str], str | RenderError] = {}
        self._footers: dict[str, str] = {}
        self._fields: dict[tuple[str, str], tuple[Path, str, Any] | RenderError] = {}
        self._strings: dict[str, _Compiled] = {}
        self._files: dict[tuple[bool, str, str, str], _Compiled] = {}

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
        self._files.clear()

    def _load_meta(self, template: str) -> TemplateMeta:
        return _remembered(self._meta, template, ValueError, super()._load_meta, template)

    def pick_locale(self, template: str, kind: str, wanted: str) -> str:
        return _remembered(self._locale, (template, kind, wanted), RenderError, super().pick_locale, template, kind,
                           wanted)

    def footer(self, locale: str) -> str:
        text = self._footers.get(locale)
        if text is None:
            text = self._footers[locale] = super().footer(locale)
        return text

    def _wechat_fields(self, name: str, locale: str) -> tuple[Path, str, Any]:
        return _remembered(self._fields, (name, locale), RenderError, super()._wechat_fields, name, locale)

    def _file(self, env: jinja2.Environment, name: str, kind: str, locale: str, variables: dict[str, Any]) -> str:
        key = (env is self.escaped, name, kind, locale)
        compiled = self._files.get(key)
        if compiled is None:
            # Found once per batch rather than through the environment's cache (a lock, a weak reference and a
            # file-name check) at every message; a file that is missing or does not compile goes to the parent.
            try:
                compiled = self._files[key] = _Compiled(
                    env.get_template(f"{name}/{FILE_FOR[kind].format(locale=locale)}"))
            except Exception:
                return super()._file(env, name, kind, locale, variables)
        try:
            return compiled.render(variables)
        except Exception:
            # The parent renders it again and names the file and line of the error.
            return super()._file(env, name, kind, locale, variables)

    def _string(self, name: str, kind: str, locale: str, source: str, variables: dict[str, Any], path: Path,
                file_text: str, key: Any) -> str:
        compiled = self._strings.get(source) if source else None
        if compiled is None:
            # Compiled once per batch instead of once per field of every message; a string
            # that does not compile goes to the parent, which names the file, line and field.
            try:
                compiled = self._strings[source] = _Compiled(self.plain.from_string(source))
            except Exception:
                return super()._string(name, kind, locale, source, variables, path, file_text, key)
        try:
            return compiled.render(variables)
        except Exception:
            return super()._string(name, kind, locale, source, variables, path, file_text, key)


class _CompiledCode(jinja2.BytecodeCache):
    """Jinja's bytecode cache, in memory: a template file read again at each batch is compiled again only when
    its text changed (Jinja checks the cached code against a checksum of the source it just read, and compiles
    an edited file anew). Compiling (parsing the file and building its Python code) again at every batch, for
    every template file the batch renders, was the larger part of a batch's first message of each: 0.58-0.75 ms
    against 0.17 ms with the code kept (an SMS template). One entry per template file of the environment, each
    replaced by its file's next version."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


class _Compiled:
    """A compiled template with its globals as one plain dict, rendered as ``render_bounded`` renders it.

    Jinja's ``Template.generate`` builds each render's context from the template's globals, a ``ChainMap``
    over the environment's, which it walks twice in Python per render (the context's keys and its set of
    global names): about a sixth of rendering an SMS (cProfile). Its globals do not change while a batch
    renders (the caches are dropped at each ``begin_batch``), so they are read into a dict once. The
    template's own code still runs in the sandbox; an error is raised as it is, and the caller has the
    parent render again to name its file and line.
    """

    __slots__ = ("globals", "template")

    def __init__(self, template: jinja2.Template) -> None:
        if template.environment.is_async:
            raise TypeError("message templates render synchronously")
        self.template = template
        self.globals = dict(template.globals)

    def render(self, variables: dict[str, Any]) -> str:
        template = self.template
        context = new_context(template.environment, template.name, template.blocks, variables, False, self.globals)
        return collect_bounded(template.root_render_func(context))


def _remembered(cache: dict[KeyT, ValueT | ErrorT], key: KeyT, errors: type[ErrorT], load: Callable[..., ValueT],
                *args: Any) -> ValueT:
    """What ``load(*args)`` returns for ``key``, or the error it raises, found once per batch."""
    found = cache.get(key)
    if found is None:
        try:
            found = load(*args)
        except errors as exc:
            found = exc
        cache[key] = found
    if isinstance(found, errors):
        raise found
    return cast(ValueT, found)


_lock = threading.Lock()


@lru_cache(maxsize=4)
def _renderer(root: str, configured_footer: str | None) -> BatchRenderer:
    return BatchRenderer(Path(root), configured_footer=configured_footer)


class StoreRenderer:
    """``engine.sending.dispatch`` renderer over ``engine.language.rendering`` and the store.

    Without a ``root`` it renders the templates in force (``engine.language.template_review``):
    the set is loaded from the store when the dispatcher's first batch renders (and again every 30 s
    in a long-running one), never per message. A given ``root`` is rendered as it is on disk (tests
    and benchmarks of the renderer). ``configured_footer`` is the marketing SMS footer of the delivery
    settings in force (``engine.sending.dispatch.make_dispatcher`` passes it; None reads the file's).
    """

    def __init__(self, root: str | None = None, *, configured_footer: str | None = None) -> None:
        self.root = root
        self.configured_footer = configured_footer
        self._in_force = InForceTemplates()

    def _root(self, session: Session) -> str:
        if self.root is not None:
            return self.root
        bind = session.get_bind()
        assert isinstance(bind, Engine)
        return str(self._in_force.folder(bind))

    def warm(self, engine: Engine) -> None:
        """Find the templates in force now (landing a changed folder checks every template file, about half a
        second), as ``make_dispatcher`` loads the journeys in force, rather than in the first batch's time."""
        root = self.root if self.root is not None else str(self._in_force.folder(engine))
        _renderer(root, self.configured_footer)

    def render_all(
        self, session: Session, touches: Sequence[ClaimedTouch], customers: dict[int, Customer], now: datetime
    ) -> list[RenderedMessage | BaseException]:
        renderer = _renderer(self._root(session), self.configured_footer)
        # What each template may show (read once per batch): a part no template of the batch names is neither
        # looked up nor built, and a touch gets only the parts its own template names.
        seen = {t: parts_named(renderer.root, t) for t in {t.template for t in touches}}
        wanted = frozenset().union(*seen.values())
        ids = list(customers)
        holidays: dict[tuple[str, Any], HolidayView | None] = {}
        names = [t.occurrence for t in touches]
        events: dict[tuple[int, str], Event] = {}
        waited: dict[tuple[int, str, str], Event] = {}
        if wanted & _EVENT_READERS:
            self._events(session, ids, names, events, waited)
        policies: dict[int, list[Policy]] = defaultdict(list)
        if "policy" in wanted:
            for p in session.exec(select(Policy).where(col(Policy.customer_id).in_(ids))).all():
                policies[p.customer_id].append(p)
        claims: dict[int, list[Claim]] = defaultdict(list)
        if "claim" in wanted:
            for c in session.exec(select(Claim).where(col(Claim.customer_id).in_(ids))).all():
                claims[c.customer_id].append(c)
        advisors: dict[int | None, AppUser] = {}
        if "advisor" in wanted:
            advisor_ids = {c.advisor_id for c in customers.values() if c.advisor_id is not None}
            if advisor_ids:
                advisors = {a.id: a for a in session.exec(select(AppUser).where(col(AppUser.id).in_(advisor_ids)))}
        # One reading of config/events.yaml for the batch, not one per touch with an event.
        types = event_types.current() if "event" in wanted else None
        out: list[RenderedMessage | BaseException] = []
        # The renderer's per-batch caches are shared: batches of concurrent lanes take turns.
        with _lock:
            renderer.begin_batch()
            for touch, occurrence in zip(touches, names, strict=True):
                customer = customers[touch.customer_id]
                try:
                    parts = seen[touch.template]
                    entry = event = None
                    if parts & _EVENT_READERS:
                        entry = events.get((touch.customer_id, occurrence))
                        event = event_after_wait(entry, waited.get((touch.customer_id, touch.journey_id, occurrence)),
                                                 touch.due_at)
                    context = _context(customer, touch, occurrence, event, entry, policies.get(touch.customer_id, []),
                                       claims.get(touch.customer_id, []), advisors, now, holidays, parts, types)
                    out.append(renderer.render(touch.template, touch.channel, context))
                except Exception as exc:  # one bad template fails its touch, not the batch
                    out.append(exc)
        return out

    @staticmethod
    def _events(session: Session, ids: list[int], names: list[str], events: dict[tuple[int, str], Event],
                waited: dict[tuple[int, str, str], Event]) -> None:
        """The events the touches' occurrences name (``events``) and the event each enrollment's last wait_for
        ended on (``waited``): what a step after it renders with."""
        # An event entry's occurrence is event-<id>; other occurrences that name an event do so by its external id.
        entry_ids = {i for i in (row_of_occurrence(n, "event") for n in names) if i is not None}
        for ev in session.exec(
            select(Event).where(col(Event.customer_id).in_(ids), col(Event.external_id).in_(set(names)))
        ).all():
            events[(ev.customer_id, ev.external_id)] = ev
        if entry_ids:
            for ev in session.exec(select(Event).where(col(Event.id).in_(entry_ids))).all():
                events[(ev.customer_id, f"event-{ev.id}")] = ev
        for customer_id, journey_id, enrolled, ev in session.exec(
            select(Enrollment.customer_id, Enrollment.journey_id, Enrollment.occurrence, Event)
            .join(Event, col(Enrollment.scope_event_id) == col(Event.id))
            .where(col(Enrollment.customer_id).in_(ids), col(Enrollment.occurrence).in_(set(names)))
        ).all():
            waited[(customer_id, journey_id, enrolled)] = ev


# A tag rendering another template file, which may use any part itself.
_OTHER_TEMPLATE = re.compile(r"\{%[-+]?\s*(?:include|import|from|extends)\b")
# The parts of a template's context that are looked up or built per message; the customer, now_local and
# locale are always there.
PARTS = frozenset({"policy", "claim", "event", "advisor", "holiday", "journey", "unsubscribe_url"})
_PART = re.compile(r"\b(" + "|".join(sorted(PARTS)) + r")\b")
# The parts whose choice reads the touch's event: the event itself, and the policy, claim and holiday it names.
_EVENT_READERS = frozenset({"event", "policy", "claim", "holiday"})


def parts_named(root: Path, template: str) -> frozenset[str]:
    """The parts of the context (``PARTS``) a file of ``template`` (any channel, locale, or its meta.yaml's WeChat
    URL) names as a word; all of them when one renders another template file or the folder cannot be read.
    A template's variables are reached by name only (the sandbox gives no access to the context as a whole), so
    a part none of its files names cannot show in its messages: it need not be looked up, built or signed (the
    unsubscribe link is an HMAC per message). A word in plain text counts too, which only builds more."""
    try:
        texts = [p.read_text(encoding="utf-8") for p in (root / template).iterdir() if p.is_file()]
    except (OSError, UnicodeDecodeError):
        return PARTS
    if any(_OTHER_TEMPLATE.search(text) for text in texts):
        return PARTS
    return frozenset(m.group(1) for text in texts for m in _PART.finditer(text))


def may_use_link(root: Path, template: str) -> bool:
    """Whether a file of ``template`` names ``unsubscribe_url`` or renders another template file (``parts_named``)."""
    return "unsubscribe_url" in parts_named(root, template)


def _named_row(rows: list[RowT], external_id: Any, row_id: int | None) -> RowT | None:
    """The row an event names by external id, else the one the occurrence names by row id."""
    if isinstance(external_id, str):
        for row in rows:
            if row.external_id == external_id:
                return row
    for row in rows:
        if row_id is not None and row.id == row_id:
            return row
    return None


def _pick_policy(rows: list[Policy], data: dict[str, Any], now: datetime, named: int | None) -> Policy | None:
    found = _named_row(rows, data.get("policy_id"), named)
    if found is not None:
        return found
    active = sorted((p for p in rows if p.status == "active" and p.expiry_date >= now.date()),
                    key=lambda p: p.expiry_date)
    if active:
        return active[0]
    return max(rows, key=lambda p: p.expiry_date) if rows else None


def _pick_claim(rows: list[Claim], data: dict[str, Any], named: int | None) -> Claim | None:
    found = _named_row(rows, data.get("claim_id"), named)
    if found is not None:
        return found
    return max(rows, key=lambda c: c.filed_at) if rows else None


def _context(customer: Customer, touch: ClaimedTouch, occurrence: str, event: Event | None, entry: Event | None,
             policies: list[Policy], claims: list[Claim], advisors: dict[int | None, AppUser], now: datetime,
             holidays: dict[tuple[str, Any], HolidayView | None], parts: frozenset[str] = PARTS,
             types: Mapping[str, EventTypeSpec] | None = None) -> TemplateContext:
    """The context of one touch with the ``parts`` its template may show (``parts_named``)."""
    # What the waited event does not name, the entry's event may (a claim.filed's claim_id).
    data = {**(entry.data if entry is not None else {}), **(event.data if event is not None else {})}
    holiday = None
    if "holiday" in parts:
        # Which holiday an occurrence falls on depends on it and the event's "holiday" only, and
        # looking it up builds a holiday calendar: once per batch per occurrence.
        named = data.get("holiday")
        holiday_key = (occurrence, named if isinstance(named, str) else None)
        if holiday_key not in holidays:
            holidays[holiday_key] = holiday_view(None, occurrence, data)
        holiday = holidays[holiday_key]
    policy = _pick_policy(policies, data, now, row_of_occurrence(occurrence, "policy")) if "policy" in parts else None
    claim = _pick_claim(claims, data, row_of_occurrence(occurrence, "claim")) if "claim" in parts else None
    advisor = advisors.get(customer.advisor_id) if customer.advisor_id is not None and "advisor" in parts else None
    link = signed_unsubscribe_link(customer, touch.channel) if "unsubscribe_url" in parts else None
    journey = JourneyView(touch.journey_id, touch.step_id, touch.category, occurrence) if "journey" in parts else None
    return context_from_rows(
        customer, now, policy=policy, claim=claim, event=event if "event" in parts else None, advisor=advisor,
        journey=journey, unsubscribe_link=link, holiday=holiday, event_types=types,
    )
