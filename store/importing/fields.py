"""Parsing and validation of CSV cells. Every reason is safe to print: PII in it is masked."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

from store.clock import known_zone, out_of_range
from store.masking import mask_email, mask_id_number, mask_phone, mask_text
from store.models import CHANNELS, PRODUCT_LINES, TIERS
from store.phones import DEFAULT_REGION, PhoneError, normalise_phone

LOCALES = ("zh-CN", "en")
POLICY_STATUSES = ("active", "lapsed", "renewed", "cancelled")
CLAIM_STATUSES = ("filed", "settled", "rejected")
_TRUE = {"yes", "y", "true", "t", "1", "是", "同意"}
_FALSE = {"no", "n", "false", "f", "0", "否", "不同意"}
# Deliberately plain: one @, no spaces, a dotted domain with a 2+ letter top level.
# Deliverability is the mail server's business; this catches typos and swapped columns.
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,}$"
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


class FieldError(ValueError):
    """A cell that cannot be imported; the message names the column and never shows PII unmasked."""


def _short(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


# Control characters (C0, DEL, C1): nothing a person types into a name or an id, and a NUL is
# refused by PostgreSQL outright. Tab and line breaks are allowed only where text may run over
# lines (``attr.*`` notes); one-line fields refuse them too.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_problem(column: str, value: str, *, lines: bool = False) -> str | None:
    """Why ``value`` cannot be stored for its control characters, or None. Names the first one
    by its code, never showing the value (it may be personal)."""
    found = (_CONTROL_BUT_LINES if lines else _CONTROL).search(value)
    if found is None:
        return None
    return f"{column} contains a control character (U+{ord(found.group()):04X} at position {found.start() + 1})"


def id_problem(column: str, value: str) -> str | None:
    """Why ``value`` cannot be a new row's id, or None: the API's rule for ids (console.text_rules),
    printable ASCII without spaces. Other systems match an id byte for byte: a full-width ``Ｃ００１``
    from a Chinese input method, or a zero-width or no-break space pasted inside one, made a second
    customer whom the API (``GET /api/customers/{id}``, an event's ``customer_id``) could never name.
    Names the first wrong character and where, not the value."""
    wrong = next((i for i, char in enumerate(value) if not "!" <= char <= "~"), None)
    if wrong is None:
        return None
    char = value[wrong]
    shown = f"{char!r} (U+{ord(char):04X})" if char.isprintable() and not char.isspace() else f"U+{ord(char):04X}"
    return (f"{column} has {shown} at position {wrong + 1}: an id is printable ASCII "
            "(letters, digits, punctuation) without spaces")


def text(column: str, raw: str, max_length: int) -> str:
    value = raw.strip()
    if len(value) > max_length:
        raise FieldError(f"{column} is longer than {max_length} characters")
    problem = control_problem(column, value)
    if problem:
        raise FieldError(problem)
    return value


def required(column: str, raw: str) -> str:
    if not raw.strip():
        raise FieldError(f"{column} is empty")
    return raw.strip()


# How a spreadsheet shows a long number in a cell not formatted as text, and saves it so: 1.38001E+10.
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:\.\d+)?[eE][+-]?\d+")


def phone(raw: str) -> str:
    if _SCIENTIFIC.fullmatch(raw.strip()):
        # "cannot be read as a number (not a number) (13****10)" sent people looking for a typo; the
        # digits the notation dropped are gone from the file and must come from the source again.
        raise FieldError("phone is in a spreadsheet's scientific notation (like 1.38E+10), which has lost its "
                         "last digits: format the column as text in the source and save the file again")
    try:
        number = normalise_phone(raw)
    except PhoneError as exc:
        shown = mask_phone(raw.strip())  # empty when the cell has no digit: then no empty "()" after the reason
        raise FieldError(f"{exc} ({shown})" if shown else str(exc)) from None
    # E.164 has no room for an extension, so normalising drops it silently: "+86 138… ext 9" would
    # be stored as the mobile without it. An SMS is sent to a number, never to an extension.
    if phonenumbers.parse(raw.strip(), DEFAULT_REGION).extension:
        raise FieldError(f"phone has an extension, which no SMS reaches ({mask_phone(number)})")
    return number


def email(raw: str) -> str:
    value = raw.strip()
    if len(value) > 254 or not _EMAIL_RE.match(value) or ".." in value:
        raise FieldError(f"email is not a valid address ({mask_email(value)})")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


# A JPush registration id: the token JPush's SDK gives one app install, letters and digits (19 lower-case
# hex characters as JPush issues them; room is left for longer ones). Anything else is a swapped column
# or a typo, which a send would only meet as JPush's refusal (1011) weeks later, with no line to correct.
_PUSH_ID_RE = re.compile(r"[0-9A-Za-z]{12,64}")


def push_registration_id(raw: str) -> str:
    """A JPush registration id as its SDK gives it; the reason names the first wrong character or the
    length, never the value (a phone number or a name in the wrong column is personal)."""
    value = raw.strip()
    column = "push_registration_id"
    wrong = next((i for i, char in enumerate(value) if not (char.isascii() and char.isalnum())), None)
    if wrong is not None:
        char = value[wrong]
        shown = repr(char) if char.isascii() and char.isprintable() else f"U+{ord(char):04X}"
        raise FieldError(f"{column} is not a JPush registration id: {shown} at position {wrong + 1} "
                         "(letters and digits only)")
    if not _PUSH_ID_RE.fullmatch(value):
        raise FieldError(f"{column} is not a JPush registration id: {len(value)} characters (12 to 64)")
    if value.isdigit() and mask_text(value) != value:
        raise FieldError(f"{column} is a phone or ID number, not a JPush registration id ({mask_text(value)})")
    return value


def id_number(raw: str) -> str:
    """An 18-character mainland resident ID (GB 11643) with a correct check character."""
    value = raw.strip().upper()
    shown = mask_id_number(value)
    if not re.fullmatch(r"\d{17}[\dX]", value):
        raise FieldError(f"id_number is not an 18-character resident ID number ({shown})")
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise FieldError(f"id_number has an impossible birth date ({shown})") from None
    check = _ID_CHECK[sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True)) % 11]
    if value[17] != check:
        raise FieldError(f"id_number check character is wrong ({shown})")
    return value


def iso_date(column: str, raw: str) -> date:
    value = raw.strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise FieldError(f"{column} {_short(value)!r} is not a date (YYYY-MM-DD)") from None
    problem = out_of_range(day)
    if problem:
        raise FieldError(f"{column} {_short(value)!r} {problem}")
    return day


def iso_datetime(column: str, raw: str, assume_tz: ZoneInfo) -> datetime:
    """ISO 8601 date-time (or date); without an offset it is read in ``assume_tz``."""
    value = raw.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            moment = datetime.combine(date.fromisoformat(value), time())
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?", value):
            moment = datetime.fromisoformat(value)
        else:
            raise ValueError
    except ValueError:
        raise FieldError(
            f"{column} {_short(value)!r} is not an ISO date-time (YYYY-MM-DDTHH:MM[:SS][+08:00])"
        ) from None
    problem = out_of_range(moment)
    if problem:
        raise FieldError(f"{column} {_short(value)!r} {problem}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=assume_tz)
    return moment.astimezone(UTC)


# A trillion yuan: past any premium, claim or score, and a million such still add up far within a
# double. 1e308 was taken, and two of them under one customer made PostgreSQL's SUM overflow, which
# stopped `journeys retier` for every customer of the chunk.
MAX_AMOUNT = 10**12


def amount(column: str, raw: str) -> float:
    value = raw.strip()
    try:
        number = float(value)
    except ValueError:
        raise FieldError(f"{column} {_short(value)!r} is not a number") from None
    if not math.isfinite(number):
        raise FieldError(f"{column} {_short(value)!r} is not a number")
    if number < 0:
        raise FieldError(f"{column} {value} is negative")
    if number > MAX_AMOUNT:
        raise FieldError(f"{column} {_short(value)} is over {MAX_AMOUNT:,}")
    return round(number, 2)


def consent(column: str, raw: str) -> bool:
    """yes/no in the spellings source systems use; an empty cell is no consent."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE or value == "":
        return False
    raise FieldError(f"{column} {_short(value)!r} is not a consent value (yes/no, true/false, 1/0, 是/否)")


# A marketing consent not given apart (stored as None): the channel's own consent covers marketing.
# An empty cell is "no", as for every consent, so this state has a word of its own, which exports write.
AS_CHANNEL = "channel"


def marketing_consent(column: str, raw: str) -> bool | None:
    """A ``consent_<channel>_marketing`` cell: a consent value, or ``channel`` (None, not given apart)."""
    if raw.strip().lower() == AS_CHANNEL:
        return None
    try:
        return consent(column, raw)
    except FieldError:
        raise FieldError(f"{column} {_short(raw.strip().lower())!r} is not a consent value (yes/no, true/false, "
                         f"1/0, 是/否, or {AS_CHANNEL}: the channel's consent covers it)") from None


def choice(column: str, raw: str, allowed: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in allowed:
        raise FieldError(f"{column} {_short(raw.strip())!r} is not one of {', '.join(allowed)}")
    return value


def tier(raw: str) -> str:
    return choice("tier", raw, TIERS)


def product_line(raw: str) -> str:
    return choice("product_line", raw, PRODUCT_LINES)


def timezone(raw: str) -> str:
    value = raw.strip()
    if not known_zone(value):
        raise FieldError(f"timezone {_short(value)!r} is not a time zone name (e.g. Asia/Shanghai)")
    return value


def locale(raw: str) -> str:
    value = raw.strip().replace("_", "-")
    for known in LOCALES:
        if value.lower() == known.lower():
            return known
    raise FieldError(f"locale {_short(value)!r} is not one of {', '.join(LOCALES)}")


def channels(raw: str) -> list[str]:
    out = [part for part in re.split(r"[;,|\s]+", raw.strip().lower()) if part]
    for part in out:
        if part not in CHANNELS:
            raise FieldError(f"preferred_channels {_short(part)!r} is not one of {', '.join(CHANNELS)}")
    problem = channel_order_problem(out)
    if problem:
        raise FieldError(problem)
    return out


def channel_order_problem(order: list[str]) -> str | None:
    """Why a list of preferred channels is no order of preference: a channel named twice. Which
    place was meant (``sms;sms;email``: a slip for ``sms;wechat;email``?) is not ours to guess, so
    the row is refused rather than one of the two dropped; the API's body can take the same rule."""
    twice = sorted({c for c in order if order.count(c) > 1})
    if twice:
        return f"preferred_channels names {', '.join(twice)} more than once (each channel has one place in the order)"
    return None


def score(raw: str) -> float:
    value = amount("tier_score", raw)
    if value > 100:
        raise FieldError(f"tier_score {value:g} is above 100")
    return value


# Bounds of a customer's free attributes (``attr.*`` columns): they live in one JSON value per
# customer that every plan reads, so neither their number nor their size is left open.
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_NAME = 64
MAX_ATTRIBUTE_VALUE = 1000


def attribute(column: str, raw: str) -> object:
    """``attr.*`` cells: numbers and true/false become JSON numbers and booleans, the rest stays text
    (at most ``MAX_ATTRIBUTE_VALUE`` characters; line breaks allowed, other control characters not)."""
    value = raw.strip()
    if len(value) > MAX_ATTRIBUTE_VALUE:
        raise FieldError(f"{column} is longer than {MAX_ATTRIBUTE_VALUE} characters")
    problem = control_problem(column, value, lines=True)
    if problem:
        raise FieldError(problem)
    if re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


# --- rules across the cells of one policy or claim (the import and console/api_policies.py) ---------


def policy_date_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(column, reason) for each date of a policy that contradicts another one."""
    problems: list[tuple[str, str]] = []
    due, grace = values.get("premium_due_date"), values.get("grace_period_end")
    if due is not None and grace is not None and grace < due:
        problems.append(("grace_period_end",
                         f"grace_period_end {grace.isoformat()} is before premium_due_date {due.isoformat()}"))
    start, expiry = values.get("start_date"), values.get("expiry_date")
    if start is not None and expiry is not None and expiry < start:
        problems.append(("expiry_date", f"expiry_date {expiry.isoformat()} is before start_date {start.isoformat()}"))
    return problems


def claim_status(values: Mapping[str, Any], *, settled_at_bad: bool = False) -> tuple[str, list[tuple[str, str]]]:
    """A claim's status (when none is given: ``settled`` with a settlement time, else ``filed``) and
    (column, reason) for what contradicts it. ``settled_at_bad``: the settlement time was given but
    could not be read, so its absence is not a second problem."""
    filed, settled = values.get("filed_at"), values.get("settled_at")
    status = values.get("status") or ("settled" if settled else "filed")
    problems: list[tuple[str, str]] = []
    if filed is not None and settled is not None and settled < filed:
        problems.append(("settled_at", "settled_at is before filed_at"))
        settled_at_bad = True
    if status == "settled" and settled is None and not settled_at_bad:
        problems.append(("status", "status settled needs settled_at"))
    return status, problems
