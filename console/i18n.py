"""UI text through gettext catalogues (zh_CN, en), compiled in memory at startup with Babel.

Shipping only ``.po`` files keeps the catalogues reviewable in git; compiling them
here means no build step can be forgotten before a release.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime, get_timezone_gmt, get_timezone_location
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent
from babel.support import Translations
from babel.units import format_unit
from markupsafe import Markup, escape

from console import condition_words, labels
from console.cron_words import cron_words
from engine.language.bilingual import localised
from engine.language.journey_model import Condition
from store import touch_reasons
from store.clock import as_utc, known_zone, utcnow, zone

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
# The shapes of engine.planning.explain's words (tests/console/test_explain_words.py holds them to it).
_HOLIDAY_FIRE = re.compile(r"(?P<holiday>[a-z_]+)-\d{4} (?P<moment>\d{4}-\S+)")
_DATE_RULE = re.compile(r"(?P<anchor>[a-z_]+\.[a-z_]+)(?P<every> every year)? (?P<offset>[+-]?\d+[dw]) "
                        r"at (?P<at>\d{1,2}:\d{2})")
_CLAIM_RULE = re.compile(r"claim settled (?P<offset>[+-]?\d+[dw])")
_CLAIM_30D = "30 days after a claim settles"
# What a webhook step records for the steps after it (engine.language.validation._webhook_event).
_WEBHOOK_EVENT = re.compile(r"webhook\.(?P<target>[a-z0-9_]+)\.(?P<outcome>succeeded|failed)")
WEBHOOK_OUTCOMES: dict[str, str] = {"succeeded": "System call succeeded: %(target)s",
                                    "failed": "System call failed: %(target)s"}
# Durations and offsets as journey files and delivery settings write them (engine.language.durations).
_DURATION = re.compile(r"(?P<sign>[+-]?)(?P<parts>(?:\d+[wdhm])+)")
_DURATION_PART = re.compile(r"(\d+)([wdhm])")
_UNITS = {"w": "duration-week", "d": "duration-day", "h": "duration-hour", "m": "duration-minute"}
# The caps the planner decides and dispatch checks again when sending, each worded apart.
_DECIDED_TWICE = frozenset({"marketing_cap", "channel_cap", "journey_cap"})
# A delivery rule's reason by its code (engine.planning.explain.reason_code), as msgids.
DELIVERY_REASONS: dict[str, str] = {
    "no_channel": "No consented, reachable channel among %(channels)s",
    "quiet_hours": "Quiet hours %(start)s–%(end)s: moved from %(moment)s",
    "marketing_cap": "Marketing cap of %(count)d per %(window)s reached",
    "marketing_cap_sending": "Marketing cap of %(count)d per %(window)s reached when sending",
    "channel_cap": "%(channel)s cap of %(count)d per %(window)s reached",
    "channel_cap_sending": "%(channel)s cap of %(count)d per %(window)s reached when sending",
    "journey_cap": "Cap of journey %(journey)s, %(count)d per %(window)s, reached",
    "journey_cap_sending": "Cap of journey %(journey)s, %(count)d per %(window)s, reached when sending",
    "pre_empted": "Pre-empted by %(journey)s, a journey of higher priority",
}
# Any other stored reason of a touch by its code (store.touch_reasons.parse), as msgids.
TOUCH_REASONS: dict[str, str] = {
    "no_customer": "The customer was removed",
    "anonymised": "The customer was anonymised (retention period over)",
    "journey_off": "Journey %(journey)s was switched off before this touch was due",
    # engine.sending.expiry: claimed later after its due time than its category or its journey allows.
    "expired": "Too late to send: %(late)s after its due time; %(category)s touches may be at most %(limit)s late",
    "expired_journey": "Too late to send: %(late)s after its due time; journey %(journey)s allows at most %(limit)s",
    "journey_gone": "Journey %(journey)s is no longer in force: its file was removed",
    "journey_edited": ("Journey %(journey)s was edited after this touch was planned: "
                       "planned again as the new version says"),
    "no_target": "System call step %(step)s is not in journey %(journey)s as in force",
    "unknown_channel": "Unknown channel %(channel)s",
    "no_address": "No %(channel)s address",
    "not_moved": "%(lost)s; a %(category)s touch is not moved to another channel",
    "no_other_channel": "%(lost)s; no other consented, reachable channel (%(channels)s)",
    "moved": "%(lost)s; moved to %(channel)s",
    "lost_channel": "%(lost)s",
    "render": "The template could not be rendered: %(detail)s",
    "delivery_unknown": "Delivery unknown: %(detail)s",
    "unconfirmed": "Not confirmed by the provider yet, being looked up: %(detail)s",
    "system_unconfigured": "No address and secret for the system %(target)s on this server",
    "system_status": "The system %(target)s answered with HTTP status %(status)s",
    "system_unreachable": "The system %(target)s could not be reached (%(error)s)",
    # engine.sending.channel_stop: the account's refusals, for ops to act on; the touch waits, unspent.
    "stopped_quota": ("%(channel)s paused: the official account's daily API quota is used up (errcode %(errcode)s); "
                      "the touch waits and is sent after WeChat resets the quota at midnight, Beijing time"),
    "stopped_ip": ("%(channel)s stopped: this server's address is not on the official account's IP whitelist "
                   "(errcode %(errcode)s). Ops: add it in the WeChat admin (Settings and development, Basic "
                   "configuration, IP whitelist); the touch waits and is tried again every 15 minutes"),
    "stopped_unauthorized": ("%(channel)s stopped: the official account is not authorised for this API (errcode "
                             "%(errcode)s). Ops: check the account's API permissions in the WeChat admin; the touch "
                             "waits and is tried again every 15 minutes"),
    "stopped_moved": ("%(channel)s was stopped for the official account (errcode %(errcode)s), so the touch went on "
                      "%(to)s, the next channel its step lists"),
}
# How a channel was lost, the start of a reroute's reason, by (opted out, marketing only).
LOST_CHANNEL: dict[tuple[bool, bool], str] = {
    (True, False): "Opted out of %(channel)s",
    (True, True): "Opted out of marketing on %(channel)s",
    (False, False): "No consent for %(channel)s",
    (False, True): "No marketing consent for %(channel)s",
}
CATEGORIES: dict[str, str] = {"service": "Service", "marketing": "Marketing"}
DOMAIN = "console"
# AppUser.locale / Customer.locale spelling → catalogue folder name.
SUPPORTED: dict[str, str] = {"zh-CN": "zh_CN", "en": "en"}
DEFAULT_LOCALE = "zh-CN"
DISPLAY_ZONE = "Asia/Shanghai"


def normalise(locale: str | None) -> str:
    if not locale:
        return DEFAULT_LOCALE
    if locale in SUPPORTED:
        return locale
    lowered = locale.replace("_", "-").lower()
    for key in SUPPORTED:
        if key.lower() == lowered or key.lower().split("-")[0] == lowered.split("-")[0]:
            return key
    return DEFAULT_LOCALE


@lru_cache(maxsize=len(SUPPORTED))
def translations(locale: str) -> Translations:
    folder = SUPPORTED[normalise(locale)]
    po_path = LOCALES_DIR / folder / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=folder, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def catalog_messages(locale: str) -> dict[str, str]:
    """msgid → msgstr of one catalogue (for tests that check coverage)."""
    folder = SUPPORTED[normalise(locale)]
    with (LOCALES_DIR / folder / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as fh:
        catalog = read_po(fh, locale=folder, domain=DOMAIN)
    return {str(m.id): str(m.string) for m in catalog if m.id}


class Translator:
    """What a page needs for one locale: ``_`` with %-style named parameters and date formatting."""

    def __init__(self, locale: str | None) -> None:
        self.locale = normalise(locale)
        self.babel_locale = Locale.parse(SUPPORTED[self.locale])
        self._translations = translations(self.locale)

    def gettext(self, message: str, **params: Any) -> str:
        text = self._translations.gettext(message)
        if any(isinstance(v, Markup) for v in params.values()):
            # A parameter that is markup (a code in <code>) stays markup; the rest of the sentence is escaped.
            return escape(text) % params
        return text % params if params else text

    __call__ = gettext

    def datetime(self, moment: datetime | None, fmt: str = "short") -> str:
        if moment is None:
            return ""
        return format_datetime(as_utc(moment), fmt, tzinfo=zone(DISPLAY_ZONE), locale=self.babel_locale)

    def moment(self, text: str | None, fmt: str = "short") -> str:
        """An ISO 8601 moment as the engine's reports give it (with the customer's offset), in that local
        time; text that is not such a moment (a rule in words) is shown as it is."""
        if not text:
            return ""
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text
        return format_datetime(moment, fmt, tzinfo=moment.tzinfo, locale=self.babel_locale)

    def time_zone(self, name: str | None) -> str:
        """A time zone in words: where its clocks are (中国（上海）时间, China (Shanghai) Time), or, for a zone
        of no place (UTC, Etc/GMT+5, CST6CDT), its offset now (GMT-05:00: Etc/GMT+5's sign is the other
        way round, so its name would mislead). A name that is no zone is shown as it is."""
        if not name or not known_zone(name):
            return name or ""
        if "/" in name and not name.startswith("Etc/"):
            return str(get_timezone_location(name, locale=self.babel_locale))
        return str(get_timezone_gmt(utcnow().astimezone(zone(name)), width="long", locale=self.babel_locale))

    def firing(self, text: str | None) -> str:
        """When a journey next takes a customer in, as explain (engine.planning.explain) words it: a
        moment, a holiday and its moment, or a date rule (anchor, offset, time, every year)."""
        if not text:
            return ""
        holiday = _HOLIDAY_FIRE.fullmatch(text)
        if holiday is not None:
            return f"{self.label('holiday', holiday['holiday'])} {self.moment(holiday['moment'])}"
        rule = _DATE_RULE.fullmatch(text) or _CLAIM_RULE.fullmatch(text)
        if rule is not None:
            parts = rule.groupdict()
            return self.date_entry(parts.get("anchor") or "claim.settled_at", parts["offset"], parts.get("at"),
                                   "year" if parts.get("every") else None)
        if text == _CLAIM_30D:
            return self.firing("claim settled 30d")
        return self.moment(text)

    def duration(self, text: str | None) -> str:
        """A duration as a journey file writes it (``1d12h``, ``90m``, ``2w``) in words: 1天12小时, 1 day 12
        hours. Text of another shape is shown as it is."""
        if not text:
            return ""
        match = _DURATION.fullmatch(text.strip())
        if match is None:
            return text
        parts = [format_unit(int(n), _UNITS[unit], length="long", locale=self.babel_locale)
                 for n, unit in _DURATION_PART.findall(match["parts"]) if int(n)]
        if not parts:
            return format_unit(0, "duration-day", length="long", locale=self.babel_locale)
        return format_list(parts, style="unit-narrow", locale=self.babel_locale)

    def offset(self, text: str | None, anchor: str | None = None) -> str:
        """A signed offset (``-30d``, ``+30d``, ``30d``, ``0d``) in words: 提前30天, 30天后, 当天; with
        ``anchor`` (a date in words) relative to it: 保单到期日前30天."""
        if not text:
            return ""
        match = _DURATION.fullmatch(text.strip())
        if match is None:
            return text if anchor is None else f"{text} {anchor}"
        if not any(int(n) for n, _ in _DURATION_PART.findall(match["parts"])):
            return self.gettext("on the day of %(anchor)s", anchor=anchor) if anchor else self.gettext("on the day")
        time = self.duration(match["parts"])
        before = match["sign"] == "-"
        if anchor is None:
            return self.gettext("%(time)s before", time=time) if before else self.gettext("%(time)s after", time=time)
        key = "%(time)s before %(anchor)s" if before else "%(time)s after %(anchor)s"
        return self.gettext(key, time=time, anchor=anchor)

    def date_entry(self, anchor: str, offset: str, at: str | None = None, every: str | None = None,
                   holidays: list[str] | None = None) -> str:
        """A date entry (engine.language.journey_model.DateEntry) in words: 每年保费缴纳日前7天 10:00."""
        if holidays:
            named = [self.label("holiday", h) for h in holidays]
            words = self.series(named)
        else:
            words = self.label("anchor", anchor)
        when = self.offset(offset, words)
        if at:
            when = self.gettext("%(when)s at %(time)s", when=when, time=at)
        return self.gettext("every year, %(when)s", when=when) if every else when

    def delivery_reason(self, code: str | None, params: dict[str, Any] | None, text: str = "",
                        journey_name: Callable[[str], str] | None = None) -> str:
        """Why a delivery rule dropped or moved a touch, from the rule's code and parameters
        (engine.planning.explain.reason_code); ``text`` (the engine's English) only when there is no code."""
        if not code or code not in DELIVERY_REASONS or params is None:
            return text
        words: dict[str, Any] = dict(params)
        if "channels" in words:
            listed = [self.label("channel", c) for c in words["channels"]]
            words["channels"] = self.series(listed)
        for named in ("channel", "to"):
            if named in words:
                words[named] = self.label("channel", words[named])
        if "window" in words:
            words["window"] = self.duration(words["window"])
        if "journey" in words and journey_name is not None:
            words["journey"] = journey_name(words["journey"])
        if "moved_from" in words:
            try:
                words["moment"] = format_datetime(datetime.strptime(words["moved_from"], "%Y-%m-%d %H:%M"), "short",
                                                  locale=self.babel_locale)
            except ValueError:
                words["moment"] = words["moved_from"]
        # The planner's cap decisions, and dispatch's checks again when sending, are worded apart.
        key = f"{code}_sending" if code in _DECIDED_TWICE and words.get("sending") else code
        try:
            return self.gettext(DELIVERY_REASONS[key], **words)
        except (KeyError, TypeError, ValueError):  # parameters of another shape: the engine's words, not a 500
            return text

    def touch_reason(self, text: str | None, journey_name: Callable[[str], str] | None = None) -> str:
        """A touch's stored ``error_reason`` in this language, from its code and parameters
        (store.touch_reasons); a provider's own message (masked when stored) as it is."""
        reason = touch_reasons.parse(text)
        if reason is None:
            return ""
        if reason.code in DELIVERY_REASONS:
            return self.delivery_reason(reason.code, reason.params, text or "", journey_name)
        if reason.code not in TOUCH_REASONS:
            return text or ""
        words: dict[str, Any] = dict(reason.params)
        if "lost_channel" in words:
            lost = LOST_CHANNEL[(bool(words.get("opted_out")), bool(words.get("marketing") or
                                                                     words.get("marketing_consent")))]
            words["lost"] = self.gettext(lost, channel=self.label("channel", words["lost_channel"]))
        if "channels" in words:
            listed = [self.label("channel", c) for c in words["channels"]] or [self.gettext("none listed")]
            words["channels"] = self.series(listed)
        for named in ("channel", "to"):
            if named in words:
                words[named] = self.label("channel", words[named])
        if "category" in words:
            category = CATEGORIES.get(words["category"])
            # Inside a sentence ("marketing touches may be ..."), without the capital its column label has.
            words["category"] = self.gettext(category).lower() if category else words["category"]
        if "journey" in words and journey_name is not None:
            words["journey"] = journey_name(words["journey"])
        if "target" in words:
            words["target"] = self.webhook_target(words["target"])
        for lateness in ("late", "limit"):
            if lateness in words:
                words[lateness] = self.duration(words[lateness])
        key = "expired_journey" if reason.code == "expired" and "journey" in words else reason.code
        try:
            return self.gettext(TOUCH_REASONS[key], **words)
        except (KeyError, TypeError, ValueError):  # parameters of another shape: the engine's words, not a 500
            return text or ""

    def condition(self, cond: Condition | None) -> str:
        """A journey condition in words (console.condition_words)."""
        return condition_words.condition_words(self, cond)

    def leaf(self, leaf: dict[str, Any]) -> str:
        """One leaf as explain reports it (field, op, expected, negated) in words."""
        return condition_words.leaf_words(self, leaf["field"], leaf["op"], leaf.get("expected"),
                                          bool(leaf.get("negated")))

    def cron(self, line: str | None) -> str:
        """A schedule's cron line in words (console.cron_words); a line it cannot read as written."""
        return cron_words(line, self.locale) if line else ""

    def day(self, day: date | None, fmt: str = "medium") -> str:
        return format_date(day, fmt, locale=self.babel_locale) if day is not None else ""

    def money(self, amount: Any) -> str:
        try:
            return format_currency(float(amount), "CNY", locale=self.babel_locale)
        except (TypeError, ValueError):
            return str(amount)

    def number(self, value: Any) -> str:
        try:
            return format_decimal(value, locale=self.babel_locale)
        except (TypeError, ValueError, ArithmeticError):
            return str(value)

    def percent(self, value: Any) -> str:
        """A share (0.35) or a percentage written as a number above 1 (35)."""
        try:
            share = float(value)
        except (TypeError, ValueError):
            return str(value)
        return format_percent(share / 100 if share > 1 else share, locale=self.babel_locale)

    def series(self, words: Iterable[str], kind: str | None = None) -> str:
        """Words one after another as this language lists them: 会说中文、健康险产品; Speaks Chinese, Health products.
        With ``kind``, ``words`` are codes of that kind, each shown by its label."""
        shown = [self.label(kind, w) for w in words] if kind else list(words)
        return ("、" if self.locale == "zh-CN" else ", ").join(shown)

    def label(self, kind: str, code: str | None) -> str:
        """The word for a code (a queue, step, product line, status, event or field; see ``console.labels``)."""
        if code is None or code == "":
            return ""
        msgid = labels.msgid(kind, str(code))
        if msgid:
            return self.gettext(msgid)
        if kind == "event":
            return self._event_label(str(code))
        return labels.humanised(str(code))

    def event_value(self, name: str, value: Any, event_type: str | None = None) -> str:
        """A coded value of an event's data field ``name`` in words: those config/events.yaml gives it (for
        ``event_type``, or any type when a condition names none), so a value authors add there is shown in
        words with no developer; else the console's table for the field's codes (channels, queues...); else
        the code written out."""
        from engine.language.event_types import value_words

        code = str(value)
        found = value_words(name, code, event_type)
        if found is not None and not isinstance(found, str):
            return found.en if self.locale.startswith("en") else found.zh_cn
        kind = found or labels.EVENT_DATA_KINDS.get(name)
        return self.label(kind, code) if kind is not None else labels.humanised(code)

    def exit_reason(self, reason: str, label: str | None = None) -> str:
        """Why an enrollment left, in words: the exit step's ``label`` (中文 / English) in this language, else the
        console's words for the engine's own reasons, else in English the code humanised. "" when there are no
        words: a Chinese page then shows the code as a code, never as if it were a word."""
        if label:
            return localised(label, self.locale)
        msgid = labels.msgid("exit", reason)
        if msgid:
            return self.gettext(msgid)
        if self.locale.startswith("en"):
            words = labels.humanised(reason).strip()
            return words[:1].upper() + words[1:]
        return ""

    def variant(self, label: str | None) -> str:
        """A split variant in words: its ``label`` (中文 / English) in this language. "" without one: the page then
        shows the variant's name as a code in both languages, since a name like ``a`` humanised is no word."""
        return localised(label, self.locale) if label else ""

    def webhook_target(self, target: str) -> str:
        """A target of config/webhooks.yaml by its ``description`` (中文 / English) in this language, else its name."""
        from engine.language.webhook_config import webhook_descriptions

        description = webhook_descriptions().get(target)
        return localised(description, self.locale) if description else target

    def _event_label(self, code: str) -> str:
        """A type declared in config/events.yaml with a ``label`` of its own: its words in this language (else
        in English); what a webhook step records, by its target's words; otherwise the code as written."""
        from engine.language import event_types

        webhook = _WEBHOOK_EVENT.fullmatch(code)
        if webhook is not None:
            return self.gettext(WEBHOOK_OUTCOMES[webhook["outcome"]], target=self.webhook_target(webhook["target"]))

        spec = event_types.current().get(code)
        words: dict[str, str] = {k: v for k, v in spec.label.items()} if spec is not None else {}
        return words.get(self.locale) or words.get("en") or labels.humanised(code)

    def remaining(self, seconds: float) -> str:
        """SLA countdown text; the browser keeps it ticking with the same two patterns."""
        overdue = seconds < 0
        total = int(abs(seconds)) // 60
        days, rest = divmod(total, 24 * 60)
        hours, minutes = divmod(rest, 60)
        if days:
            text = self.gettext("%(d)dd %(h)dh", d=days, h=hours)
        else:
            text = self.gettext("%(h)dh %(m)02dm", h=hours, m=minutes)
        return self.gettext("overdue %(time)s", time=text) if overdue else text
