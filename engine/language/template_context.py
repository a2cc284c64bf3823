"""What a template may see: the views of customer, policy, claim, event, journey and holiday.

- The context carries no raw phone number, e-mail address or ID number: a template cannot
  leak what it cannot see.
- A part a touch does not have (no policy, no claim, no advisor) is left out of the
  template's variables, so using it fails like any undefined variable.
- Labels (tier, product line, holiday) are per locale: the customer's (``zh-CN`` or
  ``en``), with anything else falling back to ``zh-CN``; datetimes are in the customer's zone.

``sample_context`` has every part present, for checking templates without a customer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from channels.template_files import LOCALES
from engine.language.event_types import EventWords, words_of
from engine.language.locales import fold_locale
from store.clock import to_local

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

DEFAULT_LOCALE = "zh-CN"

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


# Each outcome an agent records on a task (settings_model.OUTCOME_CODES) in the words of the task page's
# buttons (console.labels.OUTCOMES and its catalogues; tests/console/test_script_outcome_words.py holds the
# two to each other). A call script names the button to press as ``{{ outcome.no_answer }}``: scripts that
# wrote the codes themselves showed English agents "no_answer" beside a button reading "No answer".
OUTCOME_LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {"reached": "已接通", "no_answer": "未接通", "wrong_number": "号码错误", "call_back": "约定时间回拨",
              "complaint_raised": "客户投诉", "resolved": "已解决", "renewal_yes": "续保意向：是",
              "renewal_no": "续保意向：否"},
    "en": {"reached": "Reached", "no_answer": "No answer", "wrong_number": "Wrong number",
           "call_back": "Call back at a time", "complaint_raised": "Complaint raised", "resolved": "Resolved",
           "renewal_yes": "Renewal intent: yes", "renewal_no": "Renewal intent: no"},
}

@dataclass(frozen=True)
class CustomerView:
    name: str
    tier: str | None
    locale: str
    branch: str = ""
    timezone: str = "Asia/Shanghai"
    # The id of the system the customer came from: what another system knows them by (webhook bodies).
    external_id: str = ""


@dataclass(frozen=True)
class PolicyView:
    product_line: str
    expiry_date: date
    annual_premium: float
    start_date: date | None = None
    status: str = "active"
    # Optional policy-import columns: None when the policy system gave none.
    premium_due_date: date | None = None
    grace_period_end: date | None = None


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
    # The type's words as the caller read config/events.yaml (once per batch when sending); None: read
    # them from the file in force when rendering. Shown to templates as ``event.words``, never as is.
    words: EventWords | None = field(default=None, compare=False)


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
        c = self.customer
        tiers = TIER_LABELS.get(locale, TIER_LABELS[DEFAULT_LOCALE])
        tier_label = tiers.get(c.tier or "", UNTIERED_LABEL.get(locale, UNTIERED_LABEL[DEFAULT_LOCALE]))
        out: dict[str, Any] = {
            "customer": _view_variables(c, tz, {"tier": ("tier_label", tier_label)}),
            "now_local": self.now_local,
            "locale": locale,
        }
        if self.policy is not None:
            p = self.policy
            lines = PRODUCT_LINE_LABELS.get(locale, PRODUCT_LINE_LABELS[DEFAULT_LOCALE])
            label = lines.get(p.product_line, p.product_line)
            out["policy"] = _view_variables(p, tz, {"product_line": ("product_line_label", label)})
        if self.claim is not None:
            out["claim"] = _view_variables(self.claim, tz)
        if self.event is not None:
            out["event"] = _view_variables(self.event, tz)
            out["event"]["words"] = event_words(self.event, locale)
        if self.advisor_name is not None:
            out["advisor"] = {"name": self.advisor_name}
        if self.journey is not None:
            out["journey"] = _view_variables(self.journey, tz)
        if self.unsubscribe_url is not None:
            out["unsubscribe_url"] = self.unsubscribe_url
        if self.holiday is not None:
            h = self.holiday
            holidays = HOLIDAY_LABELS.get(locale, HOLIDAY_LABELS[DEFAULT_LOCALE])
            out["holiday"] = _view_variables(h, tz, {"key": ("label", holidays.get(h.key, h.key))})
        return out


def script_variables(context: TemplateContext, locale: str, outcomes: Iterable[str] | None = None) -> dict[str, Any]:
    """A call script's variables: the context's for ``locale``, and ``outcome``, each outcome code's words
    (only those of ``outcomes`` when given: what the task's queue lets its agents record)."""
    words = OUTCOME_LABELS.get(locale, OUTCOME_LABELS[DEFAULT_LOCALE])
    if outcomes is not None:
        words = {code: words[code] for code in outcomes if code in words}
    return {**context.variables(locale), "outcome": dict(words)}

def event_words(event: EventView, locale: str) -> dict[str, Any]:
    """``event.words``: each data field's value in words where config/events.yaml words it, else as given."""
    if isinstance(event.data, _SampleData):
        return _SampleData()
    out = dict(event.data)
    vocabularies = {"tier": TIER_LABELS, "product_line": PRODUCT_LINE_LABELS}
    for name, words in (event.words if event.words is not None else words_of(event.type)).items():
        value = out.get(name)
        if not isinstance(value, str):
            continue
        if isinstance(words, str):
            table = vocabularies[words]
            out[name] = table.get(locale, table[DEFAULT_LOCALE]).get(value, value)
        elif value in words:
            out[name] = words[value].en if locale == "en" else words[value].zh_cn
    return out


def _view_variables(
    view: DataclassInstance, tz: str, labels: Mapping[str, tuple[str, str]] | None = None
) -> dict[str, Any]:
    """A view's fields as template variables, datetimes in the customer's zone ``tz``.

    ``labels`` maps a field to the (name, text) of its label, set right after the field: the
    scope check lists a part's names in this order when it tells an author what they may use.
    """
    out: dict[str, Any] = {}
    for f in fields(view):
        value = getattr(view, f.name)
        out[f.name] = to_local(value, tz) if isinstance(value, datetime) else value
        if labels and f.name in labels:
            label_name, text = labels[f.name]
            out[label_name] = text
    return out


def resolve_locale(locale: str | None) -> str:
    """``zh-CN``/``en`` as given (``zh``, ``zh_cn``, ``en-US`` folded onto them); anything else ``zh-CN``."""
    return fold_locale(locale, LOCALES, DEFAULT_LOCALE)


class _SampleData(dict[str, Any]):
    """``event.data`` for checks: any key yields a sample value, since the event type is not known here."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def sample_context(locale: str = DEFAULT_LOCALE, tier: str = "silver") -> TemplateContext:
    """A context with every part present and realistic sizes (a three-character Chinese name)."""
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    return TemplateContext(
        customer=CustomerView("王小明" if locale == "zh-CN" else "Alex Wang", tier, locale, "上海分公司",
                              external_id="C-SAMPLE-0001"),
        now_local=to_local(now, "Asia/Shanghai"),
        policy=PolicyView("health", (now + timedelta(days=30)).date(), 1280.0, (now - timedelta(days=335)).date(),
                          premium_due_date=(now + timedelta(days=7)).date(),
                          grace_period_end=(now + timedelta(days=67)).date()),
        claim=ClaimView(3560.0, "settled", now - timedelta(days=40), now - timedelta(days=30)),
        event=EventView("sample.event", _SampleData(), now),
        advisor_name="李顾问" if locale == "zh-CN" else "Lee Chen",
        journey=JourneyView("sample-journey", "step-1", "service", "2026-W48"),
        holiday=HolidayView("mid_autumn", date(2026, 9, 25)),
        unsubscribe_url="https://example.invalid/hooks/unsubscribe/SAMPLE",
    )
