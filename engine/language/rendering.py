"""Rendering templates into messages: SMS text, WeChat template data, e-mail parts, agent call scripts.

Rules this module enforces (SPEC §6–7, §9):

- Jinja2 with ``StrictUndefined``: a variable the context lacks is a ``RenderError``, never
  a blank in a customer's message. A context part that a touch does not have (no policy,
  no claim, no advisor) is left out of the context, so using it fails the same way.
- Autoescape only for the HTML part of an e-mail; SMS, WeChat, subject and plain text are
  plain text and must not show ``&amp;``.
- The context carries no raw phone number, e-mail address or ID number: a template cannot
  leak what it cannot see.
- Locale: the customer's (``zh-CN`` or ``en``); a template without that locale's file, or a
  customer with another locale, falls back to ``zh-CN``.
- Marketing SMS end with the opt-out line (``DeliveryConfig.marketing_sms_footer``), added
  once if the template does not already end with it; the length is counted in segments
  (``channels.sms_segments``) after that, and more than the template's ``max_segments``
  (``meta.yaml``, default 3) is a ``RenderError`` naming template and count.
"""

from __future__ import annotations

import html as html_lib
import re
import threading
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import yaml
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency
from sqlmodel import Session, col, select

from channels.base import RenderedMessage
from channels.optout import MissingSecret, unsubscribe_url
from channels.sms_segments import sms_length
from channels.template_files import FILE_FOR, LOCALES, template_file
from store.clock import to_local, utcnow
from store.models import AppUser, Claim, Customer, Event, Policy, Touch

if TYPE_CHECKING:
    from engine.language.validation import Problem

DEFAULT_LOCALE = "zh-CN"
DEFAULT_MAX_SEGMENTS = 3
DEFAULT_FOOTER = "回复TD退订"
# English messages carry the same instruction in English: the Chinese line would switch a
# GSM-7 text to UCS-2 and double or triple its segments. The keyword stays TD, which the
# inbound handler recognises. (DeliveryConfig has one footer; a per-locale one would replace this.)
EN_FOOTER = "Reply TD to unsubscribe"
RENDER_CHANNELS = ("sms", "wechat", "email")

TIER_LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {"diamond": "钻石", "platinum": "铂金", "gold": "黄金", "silver": "白银", "potential": "潜力"},
    "en": {"diamond": "Diamond", "platinum": "Platinum", "gold": "Gold", "silver": "Silver", "potential": "Potential"},
}
# A customer not yet tiered is still addressed as a member rather than with a blank.
UNTIERED_LABEL = {"zh-CN": "会员", "en": "Member"}
PRODUCT_LINE_LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {"motor": "车险", "health": "健康险", "life": "寿险", "property": "财产险", "accident": "意外险"},
    "en": {"motor": "motor", "health": "health", "life": "life", "property": "property", "accident": "accident"},
}
# Keys are engine.language.catalogue.HOLIDAYS' (what journey files name).
HOLIDAY_LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {"new_year": "元旦", "spring_festival": "春节", "qingming": "清明", "labour_day": "劳动节",
              "dragon_boat": "端午", "mid_autumn": "中秋", "national_day": "国庆"},
    "en": {"new_year": "New Year", "spring_festival": "Spring Festival", "qingming": "Qingming Festival",
           "labour_day": "Labour Day", "dragon_boat": "Dragon Boat Festival", "mid_autumn": "Mid-Autumn Festival",
           "national_day": "National Day"},
}
_BABEL_LOCALE = {"zh-CN": "zh_CN", "en": "en"}


class RenderError(Exception):
    """A template could not be rendered for this context; the message names template, channel and locale."""

    def __init__(self, template: str, channel: str, locale: str, message: str, line: int | None = None,
                 path: str | None = None) -> None:
        self.template = template
        self.channel = channel
        self.locale = locale
        self.reason = message
        self.line = line
        self.path = path
        where = f"{path}:{line}: " if path and line else ""
        super().__init__(f"{where}template {template!r} ({channel}, {locale}): {message}")


# --- the context --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerView:
    name: str
    tier: str | None
    locale: str
    branch: str = ""
    timezone: str = "Asia/Shanghai"


@dataclass(frozen=True)
class PolicyView:
    product_line: str
    expiry_date: date
    annual_premium: float
    start_date: date | None = None
    status: str = "active"


@dataclass(frozen=True)
class ClaimView:
    amount: float
    status: str
    filed_at: datetime | None = None
    settled_at: datetime | None = None


@dataclass(frozen=True)
class EventView:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class HolidayView:
    key: str  # engine.language.catalogue.HOLIDAYS key, e.g. spring_festival
    date: date | None = None


@dataclass(frozen=True)
class JourneyView:
    id: str
    step: str = ""
    category: str = "service"
    occurrence: str = ""


@dataclass(frozen=True)
class TemplateContext:
    """What a template may use. Parts a touch does not have are None and absent from the template's view."""

    customer: CustomerView
    now_local: datetime
    policy: PolicyView | None = None
    claim: ClaimView | None = None
    event: EventView | None = None
    advisor_name: str | None = None
    journey: JourneyView | None = None
    holiday: HolidayView | None = None
    # None: no link could be made (JOURNEYS_SECRET_KEY unset); a template using it then fails to render.
    unsubscribe_url: str | None = None

    @property
    def locale(self) -> str:
        return resolve_locale(self.customer.locale)

    def variables(self, locale: str) -> dict[str, Any]:
        """The Jinja variables for ``locale`` (labels are per locale; datetimes in the customer's zone)."""
        tz = self.customer.timezone
        tiers = TIER_LABELS.get(locale, TIER_LABELS[DEFAULT_LOCALE])
        c = self.customer
        out: dict[str, Any] = {
            "customer": {
                "name": c.name,
                "tier": c.tier,
                "tier_label": tiers.get(c.tier or "", UNTIERED_LABEL.get(locale, UNTIERED_LABEL[DEFAULT_LOCALE])),
                "locale": c.locale,
                "branch": c.branch,
                "timezone": tz,
            },
            "now_local": self.now_local,
            "locale": locale,
        }
        if self.policy is not None:
            p = self.policy
            labels = PRODUCT_LINE_LABELS.get(locale, PRODUCT_LINE_LABELS[DEFAULT_LOCALE])
            out["policy"] = {
                "product_line": p.product_line,
                "product_line_label": labels.get(p.product_line, p.product_line),
                "expiry_date": p.expiry_date,
                "annual_premium": p.annual_premium,
                "start_date": p.start_date,
                "status": p.status,
            }
        if self.claim is not None:
            cl = self.claim
            out["claim"] = {
                "amount": cl.amount,
                "status": cl.status,
                "filed_at": to_local(cl.filed_at, tz) if cl.filed_at else None,
                "settled_at": to_local(cl.settled_at, tz) if cl.settled_at else None,
            }
        if self.event is not None:
            ev = self.event
            out["event"] = {
                "type": ev.type,
                "data": ev.data,
                "occurred_at": to_local(ev.occurred_at, tz) if ev.occurred_at else None,
            }
        if self.advisor_name is not None:
            out["advisor"] = {"name": self.advisor_name}
        if self.journey is not None:
            j = self.journey
            out["journey"] = {"id": j.id, "step": j.step, "category": j.category, "occurrence": j.occurrence}
        if self.unsubscribe_url is not None:
            out["unsubscribe_url"] = self.unsubscribe_url
        if self.holiday is not None:
            h = self.holiday
            labels = HOLIDAY_LABELS.get(locale, HOLIDAY_LABELS[DEFAULT_LOCALE])
            out["holiday"] = {"key": h.key, "label": labels.get(h.key, h.key), "date": h.date}
        return out


def resolve_locale(locale: str | None) -> str:
    """``zh-CN``/``en`` as given (``zh``, ``zh_cn``, ``en-US`` folded onto them); anything else ``zh-CN``."""
    if not locale:
        return DEFAULT_LOCALE
    norm = locale.replace("_", "-").lower()
    for known in LOCALES:
        if norm == known.lower() or norm.split("-")[0] == known.lower().split("-")[0]:
            return known
    return DEFAULT_LOCALE


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
) -> TemplateContext:
    """The template context for ``customer`` from store rows.

    What is not passed is looked up: the event is the touch's occurrence when that names an
    event (event-entry journeys); the policy is the one the event names (``policy_id``), else
    the customer's active policy expiring next, else their latest; the claim likewise
    (``claim_id``, else the latest settled or filed). The unsubscribe link is signed for the
    touch's channel (``channel`` overrides) when ``JOURNEYS_SECRET_KEY`` is set. The holiday
    (``holiday``, a catalogue key) is otherwise read from the event data (``holiday``) or the
    touch's occurrence: a holiday key in it, or an ISO date that is a Chinese public holiday.
    """
    if customer.id is None:
        raise ValueError("build_context needs a stored customer")
    now = now or utcnow()
    if event is None and touch is not None and touch.occurrence:
        event = session.exec(
            select(Event).where(Event.external_id == touch.occurrence, Event.customer_id == customer.id)
        ).first()
    data = event.data if event is not None else {}
    if policy is None:
        if isinstance(data.get("policy_id"), str):
            policy = session.exec(
                select(Policy).where(Policy.external_id == data["policy_id"], Policy.customer_id == customer.id)
            ).first()
        if policy is None:
            policy = session.exec(
                select(Policy)
                .where(Policy.customer_id == customer.id, Policy.status == "active", Policy.expiry_date >= now.date())
                .order_by(col(Policy.expiry_date))
            ).first() or session.exec(
                select(Policy).where(Policy.customer_id == customer.id).order_by(col(Policy.expiry_date).desc())
            ).first()
    if claim is None:
        if isinstance(data.get("claim_id"), str):
            claim = session.exec(
                select(Claim).where(Claim.external_id == data["claim_id"], Claim.customer_id == customer.id)
            ).first()
        if claim is None:
            claim = session.exec(
                select(Claim).where(Claim.customer_id == customer.id).order_by(col(Claim.filed_at).desc())
            ).first()
    advisor_name = None
    if customer.advisor_id is not None:
        advisor = session.get(AppUser, customer.advisor_id)
        if advisor is not None:
            advisor_name = advisor.display_name or advisor.username
    journey = None
    if touch is not None:
        journey = JourneyView(touch.journey_id, touch.step_id, touch.category, touch.occurrence)
    link = unsubscribe_link
    link_channel = channel or (touch.channel if touch is not None else None)
    if link is None and link_channel:
        try:
            link = unsubscribe_url(customer.external_id, link_channel)
        except MissingSecret:
            link = None
    holiday_view = _holiday(holiday, touch.occurrence if touch is not None else None, data)
    return TemplateContext(
        customer=CustomerView(customer.name, customer.tier, customer.locale, customer.branch, customer.timezone),
        now_local=to_local(now, customer.timezone),
        policy=PolicyView(policy.product_line, policy.expiry_date, policy.annual_premium, policy.start_date,
                          policy.status) if policy is not None else None,
        claim=ClaimView(claim.amount, claim.status, claim.filed_at, claim.settled_at) if claim is not None else None,
        event=EventView(event.type, dict(event.data), event.occurred_at) if event is not None else None,
        advisor_name=advisor_name,
        journey=journey,
        unsubscribe_url=link,
        holiday=holiday_view,
    )


def _holiday(key: str | None, occurrence: str | None, data: dict[str, Any]) -> HolidayView | None:
    from engine.language.catalogue import HOLIDAYS

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


# --- templates on disk ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateMeta:
    name: str
    description: str = ""
    category: str = "service"
    max_segments: int = DEFAULT_MAX_SEGMENTS
    wechat_template_id: str = ""
    wechat_url: str = ""
    variables: tuple[str, ...] = ()


def load_meta(root: Path, name: str) -> TemplateMeta:
    """``templates/<name>/meta.yaml``; a missing or malformed file is a ValueError with the reason."""
    path = root / name / "meta.yaml"
    if not path.is_file():
        raise ValueError(f"unknown template {name!r}: no {name}/meta.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{name}/meta.yaml: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{name}/meta.yaml must be a mapping")
    sms = data.get("sms") or {}
    wechat = data.get("wechat") or {}
    if not isinstance(sms, dict) or not isinstance(wechat, dict):
        raise ValueError(f"{name}/meta.yaml: 'sms' and 'wechat' must be mappings")
    max_segments = sms.get("max_segments", DEFAULT_MAX_SEGMENTS)
    if not isinstance(max_segments, int) or isinstance(max_segments, bool) or max_segments < 1:
        raise ValueError(f"{name}/meta.yaml: sms.max_segments must be a whole number ≥ 1, not {max_segments!r}")
    category = data.get("category", "service")
    if category not in ("service", "marketing"):
        raise ValueError(f"{name}/meta.yaml: category must be 'service' or 'marketing', not {category!r}")
    variables = data.get("variables") or []
    return TemplateMeta(
        name=name,
        description=str(data.get("description", "")),
        category=category,
        max_segments=max_segments,
        wechat_template_id=str(wechat.get("template_id", "") or ""),
        wechat_url=str(wechat.get("url", "") or ""),
        variables=tuple(str(v) for v in variables) if isinstance(variables, list) else (),
    )


def _date_filter(ctx: Any, value: Any, fmt: str = "long") -> str:
    """``{{ policy.expiry_date | date }}`` → 2026年12月1日 / December 1, 2026."""
    locale = _BABEL_LOCALE.get(ctx.get("locale", DEFAULT_LOCALE), "zh_CN")
    if isinstance(value, datetime):
        return str(format_datetime(value, format=fmt, locale=locale))
    if isinstance(value, date):
        return str(format_date(value, format=fmt, locale=locale))
    raise TypeError(f"date filter needs a date, not {type(value).__name__}")


def _money_filter(ctx: Any, value: Any, currency: str = "CNY") -> str:
    """``{{ claim.amount | money }}`` → ¥1,234.50."""
    locale = _BABEL_LOCALE.get(ctx.get("locale", DEFAULT_LOCALE), "zh_CN")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"money filter needs a number, not {type(value).__name__}")
    return str(format_currency(value, currency, locale=locale))


def _environment(root: Path, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=True,
    )
    env.filters["date"] = jinja2.pass_context(_date_filter)
    env.filters["money"] = jinja2.pass_context(_money_filter)
    return env


class Renderer:
    """Renders the templates under one folder. Thread-safe; Jinja caches compiled templates."""

    def __init__(self, root: Path, footer: str | None = None) -> None:
        self.root = root
        self._footer = footer
        self.plain = _environment(root, autoescape=False)
        self.escaped = _environment(root, autoescape=True)

    def footer(self, locale: str) -> str:
        """The opt-out line for ``locale``: the configured one, except English messages (see ``EN_FOOTER``)."""
        if self._footer is not None:
            return self._footer
        return EN_FOOTER if locale == "en" else marketing_footer()

    # -- public --

    def render(self, template: str, channel: str, context: TemplateContext,
               locale: str | None = None) -> RenderedMessage:
        if channel not in RENDER_CHANNELS:
            raise RenderError(template, channel, locale or context.locale,
                              f"unknown channel {channel!r}: channels are {', '.join(RENDER_CHANNELS)}")
        try:
            meta = load_meta(self.root, template)
        except ValueError as exc:
            raise RenderError(template, channel, locale or context.locale, str(exc)) from None
        chosen = self.pick_locale(template, channel, locale or context.locale)
        variables = context.variables(chosen)
        if channel == "sms":
            return self._sms(meta, chosen, variables)
        if channel == "email":
            return self._email(meta, chosen, variables)
        return self._wechat(meta, chosen, variables)

    def render_task_script(self, template: str, context: TemplateContext, locale: str | None = None) -> str:
        chosen = self.pick_locale(template, "task", locale or context.locale)
        return self._file(self.plain, template, "task", chosen, context.variables(chosen)).strip()

    def pick_locale(self, template: str, kind: str, wanted: str) -> str:
        """The wanted locale if the template has that file, else zh-CN (which must exist)."""
        wanted = resolve_locale(wanted)
        for candidate in (wanted, DEFAULT_LOCALE):
            if template_file(self.root, template, kind, candidate).is_file():
                return candidate
        raise RenderError(template, kind, wanted,
                          f"no {kind} version ({FILE_FOR[kind].format(locale=wanted)} or "
                          f"{FILE_FOR[kind].format(locale=DEFAULT_LOCALE)})")

    # -- per channel --

    def _sms(self, meta: TemplateMeta, locale: str, variables: dict[str, Any]) -> RenderedMessage:
        text = self._file(self.plain, meta.name, "sms", locale, variables).strip()
        if not text:
            raise RenderError(meta.name, "sms", locale, "renders to an empty message")
        if meta.category == "marketing":
            text = with_footer(text, self.footer(locale))
        length = sms_length(text)
        if length.segments > meta.max_segments:
            raise RenderError(
                meta.name, "sms", locale,
                f"SMS is {length.segments} segments ({length.encoding}, {length.units} units), "
                f"more than the template's max_segments {meta.max_segments}",
            )
        return RenderedMessage(channel="sms", template=meta.name, locale=locale, text=text, segments=length.segments)

    def _email(self, meta: TemplateMeta, locale: str, variables: dict[str, Any]) -> RenderedMessage:
        subject = " ".join(self._block(self.plain, meta.name, locale, "subject", variables, required=True).split())
        text = self._block(self.plain, meta.name, locale, "text", variables, required=True).strip()
        html = self._block(self.escaped, meta.name, locale, "html", variables, required=False).strip()
        if not subject:
            raise RenderError(meta.name, "email", locale, "the subject renders empty")
        if not html:
            # No html block: the plain text, escaped, so the e-mail still has both parts.
            paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
            html = "\n".join(f"<p>{html_lib.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
        return RenderedMessage(channel="email", template=meta.name, locale=locale, subject=subject, text=text,
                               html=html)

    def _wechat(self, meta: TemplateMeta, locale: str, variables: dict[str, Any]) -> RenderedMessage:
        path = template_file(self.root, meta.name, "wechat", locale)
        source = path.read_text(encoding="utf-8")
        try:
            fields = yaml.safe_load(source) or {}
        except yaml.YAMLError as exc:
            raise RenderError(meta.name, "wechat", locale, f"YAML: {exc}") from None
        if not isinstance(fields, dict) or not all(isinstance(v, str | int | float) for v in fields.values()):
            raise RenderError(meta.name, "wechat", locale, f"{path.name} must map each field name to a string")
        if not meta.wechat_template_id:
            raise RenderError(meta.name, "wechat", locale, "meta.yaml has no wechat.template_id")
        data: dict[str, str] = {}
        for key, value in fields.items():
            data[str(key)] = self._string(meta.name, "wechat", locale, str(value), variables, path, source, key).strip()
        url = self._string(meta.name, "wechat", locale, meta.wechat_url, variables, path, source, "url").strip()
        return RenderedMessage(channel="wechat", template=meta.name, locale=locale,
                               wechat_template_id=meta.wechat_template_id, wechat_url=url, wechat_data=data)

    # -- Jinja plumbing with errors that name the file and line --

    def _file(self, env: jinja2.Environment, name: str, kind: str, locale: str, variables: dict[str, Any]) -> str:
        relative = f"{name}/{FILE_FOR[kind].format(locale=locale)}"
        try:
            return env.get_template(relative).render(variables)
        except jinja2.TemplateNotFound:
            raise RenderError(name, kind, locale, f"missing file {relative}") from None
        except Exception as exc:
            raise self._error(exc, name, kind, locale, relative) from None

    def _block(self, env: jinja2.Environment, name: str, locale: str, block: str, variables: dict[str, Any],
               required: bool) -> str:
        relative = f"{name}/{FILE_FOR['email'].format(locale=locale)}"
        try:
            tmpl = env.get_template(relative)
        except jinja2.TemplateNotFound:
            raise RenderError(name, "email", locale, f"missing file {relative}") from None
        except Exception as exc:
            raise self._error(exc, name, "email", locale, relative) from None
        render_block = tmpl.blocks.get(block)
        if render_block is None:
            if required:
                raise RenderError(name, "email", locale, f"{relative} has no {{% block {block} %}}")
            return ""
        try:
            try:
                return "".join(render_block(tmpl.new_context(variables)))
            except Exception:
                # Rewrites the traceback onto template lines, as Template.render does.
                env.handle_exception()
        except Exception as exc:
            raise self._error(exc, name, "email", locale, relative) from None

    def _string(self, name: str, kind: str, locale: str, source: str, variables: dict[str, Any], path: Path,
                file_text: str, key: Any) -> str:
        if not source:
            return ""
        try:
            return self.plain.from_string(source).render(variables)
        except Exception as exc:
            line = _key_line(file_text, str(key))
            err = self._error(exc, name, kind, locale, f"{name}/{path.name}")
            raise RenderError(name, kind, locale, f"field {key!r}: {err.reason}", line,
                              f"{name}/{path.name}") from None

    def _error(self, exc: BaseException, name: str, kind: str, locale: str, relative: str) -> RenderError:
        if isinstance(exc, RenderError):
            return exc
        if isinstance(exc, jinja2.TemplateSyntaxError):
            return RenderError(name, kind, locale, f"template syntax: {exc.message}", exc.lineno, relative)
        if isinstance(exc, jinja2.UndefinedError):
            message = f"undefined variable: {exc.message}"
        else:
            message = f"{type(exc).__name__}: {exc}"
        return RenderError(name, kind, locale, message, _template_line(exc, relative), relative)


def _template_line(exc: BaseException, relative: str) -> int | None:
    """The template line the error happened on (Jinja's rewritten traceback names the template file)."""
    line = None
    suffix = relative.replace("\\", "/")
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename.replace("\\", "/").endswith(suffix):
            line = lineno
    return line


def _key_line(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*['\"]?{re.escape(key)}['\"]?\s*:")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


_TRAILING = re.compile(r"[\s。.!！]+$")


def with_footer(text: str, footer: str) -> str:
    """``text`` ending with the opt-out line, added once (not again if the text already ends with it)."""
    text = text.rstrip()
    if not footer or _TRAILING.sub("", text).endswith(_TRAILING.sub("", footer)):
        return text
    separator = " " if text and text[-1].isascii() else ""
    return f"{text}{separator}{footer}"


def wechat_template_data(message: RenderedMessage) -> dict[str, dict[str, str]]:
    """The ``data`` object of a WeChat template-message send: ``{"first": {"value": "..."}, ...}``."""
    return {key: {"value": value} for key, value in message.wechat_data.items()}


# --- module-level entry points ---------------------------------------------------------------------

_renderers: dict[tuple[str, str | None], Renderer] = {}
_lock = threading.Lock()


def renderer(root: Path | None = None, footer: str | None = None) -> Renderer:
    """A cached Renderer for ``root`` (default: ``templates/`` or ``JOURNEYS_TEMPLATES_DIR``)."""
    from engine.language.paths import templates_dir

    root = root or templates_dir()
    key = (str(root.resolve()), footer)
    with _lock:
        if key not in _renderers:
            _renderers[key] = Renderer(root, footer)
        return _renderers[key]


_footer_cache: dict[str, tuple[float, str]] = {}


def marketing_footer() -> str:
    """``marketing_sms_footer`` from ``config/delivery.yaml`` (re-read when the file changes)."""
    from engine.language.paths import delivery_config_path
    from engine.language.settings_model import DeliveryConfig
    from engine.language.validation import load_config

    path = delivery_config_path()
    if not path.is_file():
        return DEFAULT_FOOTER
    mtime = path.stat().st_mtime
    cached = _footer_cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    config, problems = load_config(DeliveryConfig, path)
    if config is None:
        raise RuntimeError("delivery configuration is invalid: " + "; ".join(str(p) for p in problems))
    _footer_cache[str(path)] = (mtime, config.marketing_sms_footer)
    return config.marketing_sms_footer


def render(template: str, channel: str, context: TemplateContext, *, locale: str | None = None,
           root: Path | None = None) -> RenderedMessage:
    """Render ``template`` for ``channel`` (sms | wechat | email); raises RenderError."""
    return renderer(root).render(template, channel, context, locale)


def render_task_script(template: str, context: TemplateContext, *, locale: str | None = None,
                       root: Path | None = None) -> str:
    """The agent's call script (``task.<locale>.j2``) for this context; raises RenderError."""
    return renderer(root).render_task_script(template, context, locale)


# --- checking every template -------------------------------------------------------------------------


class _SampleData(dict[str, Any]):
    """``event.data`` for checks: any key yields a sample value, since the event type is not known here."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def sample_context(locale: str = DEFAULT_LOCALE, tier: str = "silver") -> TemplateContext:
    """A context with every part present and realistic sizes (a three-character Chinese name)."""
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    return TemplateContext(
        customer=CustomerView("王小明" if locale == "zh-CN" else "Alex Wang", tier, locale, "上海分公司"),
        now_local=to_local(now, "Asia/Shanghai"),
        policy=PolicyView("health", (now + timedelta(days=30)).date(), 1280.0, (now - timedelta(days=335)).date()),
        claim=ClaimView(3560.0, "settled", now - timedelta(days=40), now - timedelta(days=30)),
        event=EventView("sample.event", _SampleData(), now),
        advisor_name="李顾问" if locale == "zh-CN" else "Lee Chen",
        journey=JourneyView("sample-journey", "step-1", "service", "2026-W48"),
        holiday=HolidayView("mid_autumn", date(2026, 9, 25)),
        unsubscribe_url="https://example.invalid/hooks/unsubscribe/SAMPLE",
    )


def check_templates(root: Path | None = None, names: Iterable[str] | None = None) -> list[Problem]:
    """Render every template (or ``names``) in every channel and locale it has with a sample context.

    Catches undefined variables, syntax and type errors, a bad meta.yaml and SMS over their
    segment limit, each as a ``Problem`` at the template file's line. ``journeys validate``
    can add these to its report.
    """
    from channels.template_files import available_templates
    from engine.language.paths import templates_dir
    from engine.language.validation import Problem, display_path

    root = root or templates_dir()
    rend = Renderer(root, footer=None)
    problems: list[Problem] = []
    for name in sorted(set(names) if names is not None else available_templates(root)):
        meta_path = root / name / "meta.yaml"
        try:
            load_meta(root, name)
        except ValueError as exc:
            problems.append(Problem(display_path(meta_path), 1, 1, str(exc)))
            continue
        for kind in ("sms", "email", "wechat", "task"):
            for locale in LOCALES:
                path = template_file(root, name, kind, locale)
                if not path.is_file():
                    continue
                context = sample_context(locale)
                try:
                    if kind == "task":
                        rend.render_task_script(name, context, locale)
                    else:
                        rend.render(name, kind, context, locale)
                except RenderError as exc:
                    problems.append(Problem(display_path(path), exc.line or 1, 1, exc.reason))
    return problems
