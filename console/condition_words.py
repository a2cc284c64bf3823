"""A journey condition in the reader's words: "等级 为 金卡" for ``{field: customer.tier, op: eq, value: gold}``.

Ops pages show audiences, branch cases, entry and wait filters and explain's leaves; a Chinese page
must not show ``customer.churn_risk ge 0.5``. Fields, operators and coded values (tiers, channels,
product lines, durations, yes/no) are worded through the catalogue; a field of the open maps
(``customer.attributes.*``, ``event.data.*``) is named by its key. The code stays on the page
as a tooltip for the people who write journey files.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from console import labels
from engine.language.journey_model import DURATION_OPERATORS, VALUELESS_OPERATORS, Condition


class Translator(Protocol):
    """What wording needs of ``console.i18n.Translator`` (which calls into here)."""

    locale: str

    def gettext(self, message: str, **params: Any) -> str: ...

    def label(self, kind: str, code: str | None) -> str: ...

    def event_value(self, name: str, value: Any, event_type: str | None = None) -> str: ...

    def duration(self, text: str | None) -> str: ...

    def series(self, words: Iterable[str], kind: str | None = None) -> str: ...

    def time_zone(self, name: str | None) -> str: ...


FIELD_WORDS: dict[str, str] = {
    "customer.tier": "Tier",
    "customer.tier_score": "Tier score",
    "customer.branch": "Branch",
    "customer.locale": "Language",
    "customer.timezone": "Time zone",
    "customer.birthday": "Birthday",
    "customer.age": "Age",
    "customer.consent_sms": "SMS consent",
    "customer.consent_wechat": "WeChat consent",
    "customer.consent_email": "Email consent",
    "customer.has_phone": "Has a phone number",
    "customer.has_email": "Has an email address",
    "customer.has_wechat": "Has WeChat",
    "customer.preferred_channels": "Preferred channels",
    "customer.last_active_at": "Last active",
    "customer.created_at": "Customer since",
    "customer.tenure_days": "Days as a customer",
    "customer.product_lines": "Product lines held",
    "customer.policy_count": "Policies",
    "customer.active_policy_count": "Active policies",
    "customer.annual_premium_total": "Annual premium in all",
    "customer.claim_count": "Claims",
    "customer.days_inactive": "Days inactive",
    "customer.logins_90d": "Logins in 90 days",
    "customer.replies_90d": "Replies in 90 days",
    "customer.marketing_touches_7d": "Marketing messages in 7 days",
    "customer.last_nps": "Last NPS score",
    "customer.churn_risk": "Churn risk",
    "policy.product_line": "Policy's product line",
    "policy.annual_premium": "Policy's annual premium",
    "policy.start_date": "Policy start date",
    "policy.expiry_date": "Policy expiry date",
    "policy.status": "Policy status",
    "policy.renewed": "Policy renewed",
    "policy.premium_due_date": "Premium due date",
    "policy.grace_period_end": "End of grace period",
    "claim.amount": "Claim amount",
    "claim.status": "Claim status",
    "claim.filed_at": "Claim filed",
    "claim.settled_at": "Claim settled",
    "claim.product_line": "Claim's product line",
    "event.type": "Event",
    "event.occurred_at": "Event time",
}
OPERATOR_WORDS: dict[str, str] = {
    "eq": "%(field)s is %(value)s",
    "ne": "%(field)s is not %(value)s",
    "lt": "%(field)s below %(value)s",
    "le": "%(field)s at most %(value)s",
    "gt": "%(field)s above %(value)s",
    "ge": "%(field)s at least %(value)s",
    "in": "%(field)s is one of %(value)s",
    "not_in": "%(field)s is none of %(value)s",
    "contains": "%(field)s include %(value)s",
    "exists": "%(field)s is known",
    "missing": "%(field)s is not known",
    "within_last": "%(field)s within the last %(value)s",
    "older_than": "%(field)s more than %(value)s ago",
    "within_next": "%(field)s within the next %(value)s",
}
# Which label table words a field's coded values.
VALUE_KINDS: dict[str, str] = {
    "customer.tier": "tier", "customer.preferred_channels": "channel", "customer.product_lines": "product_line",
    "policy.product_line": "product_line", "claim.product_line": "product_line", "policy.status": "status",
    "claim.status": "status", "event.type": "event",
}
JOINERS: dict[str, str] = {"all": "%(left)s and %(right)s", "any": "%(left)s or %(right)s"}


def field_words(t: Translator, path: str) -> str:
    if path in FIELD_WORDS:
        return t.gettext(FIELD_WORDS[path])
    for prefix, kind in (("event.data.", "field"), ("customer.attributes.", None)):
        if path.startswith(prefix):
            key = path[len(prefix):]
            if kind:
                return t.label(kind, key)
            named = labels.msgid("attribute", key)
            return t.gettext(named) if named else t.gettext("Attribute %(name)s", name=key)
    return path


def value_words(t: Translator, path: str, op: str, value: Any) -> str:
    if isinstance(value, list):
        words = [value_words(t, path, op, v) for v in value]
        return t.series(words)
    if op in DURATION_OPERATORS:
        return t.duration(str(value))
    if isinstance(value, bool):
        return t.gettext("yes") if value else t.gettext("no")
    if path == "customer.timezone" and isinstance(value, str):
        return t.time_zone(value)
    kind = VALUE_KINDS.get(path)
    if kind is not None and isinstance(value, str):
        return t.label(kind, value)
    if path.startswith("customer.attributes.") and isinstance(value, str):
        named = labels.msgid("attribute_value", value)
        return t.gettext(named) if named else value
    if path.startswith("event.data.") and isinstance(value, str):
        return t.event_value(path[len("event.data."):], value)
    return str(value)


def leaf_words(t: Translator, path: str, op: str, value: Any, negated: bool = False) -> str:
    template = OPERATOR_WORDS.get(op)
    if template is None:
        return f"{path} {op} {value!r}"
    shown = "" if op in VALUELESS_OPERATORS else value_words(t, path, op, value)
    words = t.gettext(template, field=field_words(t, path), value=shown)
    return t.gettext("not (%(condition)s)", condition=words) if negated else words


def condition_words(t: Translator, cond: Condition | None) -> str:
    """The whole condition tree in words; groups inside another group are bracketed."""
    if cond is None:
        return ""
    return _words(t, cond, top=True)


def _words(t: Translator, cond: Condition, top: bool = False) -> str:
    if cond.field is not None:
        return leaf_words(t, cond.field, str(cond.op), cond.value)
    if cond.not_ is not None:
        return t.gettext("not (%(condition)s)", condition=_words(t, cond.not_, top=True))
    joiner, parts = ("all", cond.all) if cond.all is not None else ("any", cond.any or [])
    text = ""
    for part in parts:
        words = _words(t, part)
        text = words if not text else t.gettext(JOINERS[joiner], left=text, right=words)
    return text if top or len(parts) < 2 else t.gettext("(%(condition)s)", condition=text)
