"""Masking of personal data wherever a person or a log reads it (PIPL, GB/T 35273), and log records made
safe to read: one line each, of bounded length, whatever a provider or a request put in them."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any


def mask_phone(phone: str | None) -> str:
    """``+8613812345678`` → ``138****5678``: the national number, middle four hidden.

    A shorter number (a landline, an extension, an address typed wrong) hides four digits too, and
    never shows more than 3 + 4 of them: ``3+4`` of a 7-digit value would be the whole of it."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if phone.startswith("+86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) < 7:
        return "*" * len(digits)
    head, tail = _shown_ends(len(digits), hidden=4)
    return f"{digits[:head]}****{digits[len(digits) - tail:]}"


def mask_email(email: str | None) -> str:
    if not email:
        return ""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_id_number(id_number: str | None) -> str:
    """Resident ID: first 3 and last 4 kept (``110***********1234``); a shorter number (a passport's)
    keeps less than half of itself."""
    if not id_number:
        return ""
    n = len(id_number)
    if n <= 7:
        return "*" * n
    head, tail = _shown_ends(n, hidden=max(4, (n + 1) // 2))
    return f"{id_number[:head]}{'*' * (n - head - tail)}{id_number[n - tail:]}"


def _shown_ends(length: int, hidden: int) -> tuple[int, int]:
    """How many characters of a value of ``length`` are shown at its start and end: 3 and 4 at most,
    so that at least ``hidden`` are not."""
    shown = max(0, min(7, length - hidden))
    head = 3 if shown == 7 else shown // 2
    return head, shown - head


def mask_name(name: str | None) -> str:
    """Chinese names keep the family name (张**); others the first letter."""
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)


# Mainland mobiles with or without +86, e-mail addresses and 18-digit resident IDs in free text,
# also as a URL carries them (a request line is logged as sent: ``%40`` for @, ``%2B`` for +, a space
# as ``+`` or ``%20``), with the separators people write (138-1234-5678, 138 1234 5678) and in
# full-width digits (``\d`` is any decimal digit).
_GAP = r"(?:[-. +]|%20)?"
# The country code as dialled from abroad too (0086), which people write as often as +86.
_PHONE_RE = re.compile(r"(?<!\d)(?:(?:\+|%2[Bb]|00|００)?[8８][6６][- ]?)?([1１][3-9３-９]\d)" + _GAP + r"(\d{4})"
                       + _GAP + r"(\d{4})(?!\d)")
# An ID number as people write it too: in the groups of its region, birth date and serial (110105 19491231
# 002X, with spaces or hyphens), and typed in full width (its X too: Ｘ).
_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{3})\d{3}(?:[- ]|%20)?\d{8}(?:[- ]|%20)?(\d{3}[\dXxＸｘ])(?![0-9A-Za-z])")
# The at sign also full width (a Chinese input method types ＠) and encoded twice (a URL inside a URL's query).
_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(?:@|＠|%40|%2540)([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# A WeChat openid (or unionid) names one person as a phone number does, and WeChat puts it in the query of
# every push to our server URL (?signature=…&nonce=…&openid=o6_b…), which the access log writes as sent.
# It travels under other names and notations too: ``touser`` of a template send's JSON, ``FromUserName``
# of a push's XML, a query encoded inside another (``openid%3D``), a dict or JSON object in a message.
# One already masked (``o****xYz1``) is left as it is, so that masking twice masks once.
# A JPush registration id (a device's: personal as a phone number is) is known only by its name beside it,
# ``registration_id`` of a push's audience, a list in JSON (``"registration_id": ["1a00…"]``).
_OPENID_RE = re.compile(r"(?i)((?:open|union)id|touser|fromusername|registration_ids?)"
                        r"(=|%3D|%253D|[\"']?\s*[:=]\s*\[?\s*[\"']|>\s*(?:<!\[CDATA\[)?)([A-Za-z0-9_-]++)(?!\*)")


# An openid on its own, with no name beside it (a logging argument, an exception's text, a provider's
# message): WeChat's are 28 characters of [A-Za-z0-9_-] starting with ``o``. A run of words of that
# length (``observability_metrics_export``, ``onboarding-flow-2026-version2``) has no capital letter and
# passes between letters and digits a few times at most; an openid has a capital all but always, and one
# in lower case (some official accounts' are) changes between letters and digits all along.
_BARE_OPENID_RE = re.compile(r"(?<![A-Za-z0-9_-])o[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-])")
_CAPITAL_RE = re.compile(r"[A-Z]")
_LETTER_DIGIT_RE = re.compile(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])")
_OPENID_CHANGES = 4


def _bare_openid(value: str) -> bool:
    """Whether a 28-character ``o…`` token is an openid rather than words (see ``_BARE_OPENID_RE``)."""
    joined = value.replace("_", "").replace("-", "")
    return bool(_CAPITAL_RE.search(value)) or len(_LETTER_DIGIT_RE.findall(joined)) >= _OPENID_CHANGES


def _masked_bare_openid(match: re.Match[str]) -> str:
    value = match.group()
    return mask_openid(value) if _bare_openid(value) else value


def mask_openid(openid: str | None) -> str:
    """``oAbCdEfGhIjKlMnOpQrStUvWxYz1`` → ``o****xYz1``: less than half of it shown, whatever its length."""
    if not openid:
        return ""
    head, tail = _shown_ends(len(openid), hidden=max(4, (len(openid) + 1) // 2))
    return f"{openid[:min(head, 1)]}****{openid[len(openid) - tail:]}"


def mask_text(text: str) -> str:
    """Mask every phone number, ID number, e-mail address and openid (named or on its own) found in ``text``."""
    # Openids first: one holding eleven digits would otherwise be cut apart by the phone pattern.
    text = _OPENID_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{mask_openid(m.group(3))}", text)
    text = _BARE_OPENID_RE.sub(_masked_bare_openid, text)
    text = _ID_RE.sub(lambda m: f"{m.group(1)}***********{m.group(2)}", text)
    text = _PHONE_RE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return _EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


# A value already masked (138****5678, w***@example.com, o****xYz1): still part of the person's number
# or address, so what is redacted goes too, as a whole word.
_MASKED_RE = re.compile(r"[^\s,;:='\"()<>\[\]{}]*\*{3,}[^\s,;:='\"()<>\[\]{}]*")


def redact_text(text: str, placeholder: str = "[removed]") -> str:
    """``text`` with every phone number, ID number, e-mail address and openid, masked or not, replaced
    by ``placeholder``: for free text kept after its person is anonymised, where even part of a
    number is too much."""
    text = _OPENID_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{placeholder}", text)
    text = _BARE_OPENID_RE.sub(lambda m: placeholder if _bare_openid(m.group()) else m.group(), text)
    for pattern in (_ID_RE, _PHONE_RE, _EMAIL_RE, _MASKED_RE):
        text = pattern.sub(placeholder, text)
    return text


# What one log record may carry: a value from outside (a provider's message id, a request path) is cut
# here, and the whole message there, so nobody can fill the log with a 20 kB "id".
MAX_LOG_VALUE = 1000
MAX_LOG_MESSAGE = 4000
# C0/C1 controls (newline, carriage return, NUL, the terminal's ESC...), Unicode line and paragraph
# separators and the bidi overrides: anything that can start a forged log line or hide what a line says.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# A traceback keeps its own line breaks; the rest is escaped as in messages.
_TRACEBACK_CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def log_safe(text: str, limit: int = MAX_LOG_VALUE) -> str:
    """``text`` fit for one log line: control characters escaped as Python writes them (``\\n``,
    ``\\x00``), so a value from outside cannot forge a line of its own, and cut at ``limit``
    characters with the count of those left out."""
    text = _CONTROL_RE.sub(_escaped, text)
    if len(text) > limit:
        return f"{text[:limit]}...[{len(text) - limit} more characters]"
    return text


def log_line(text: str) -> str:
    """A whole log message as it may be written: PII masked, then ``log_safe`` up to ``MAX_LOG_MESSAGE``.

    Masked before cutting, so a cut never leaves part of a phone number the masking no longer sees."""
    return log_safe(mask_text(text), MAX_LOG_MESSAGE)


def rewrite_record(record: logging.LogRecord, rewrite: Callable[[str], str]) -> None:
    """Replace the record's message by ``rewrite`` of it, formatted, when that changes anything.

    For log filters that hide what no handler may see (PII here, secrets in ``channels.wechat``).
    """
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is still logged, just not rewritten
        return
    rewritten = rewrite(message)
    if rewritten != message:
        record.msg = rewritten
        record.args = None


class MaskingFilter(logging.Filter):
    """Rewrites log records so no handler ever sees unmasked PII, a control character or an unbounded message."""

    def filter(self, record: logging.LogRecord) -> bool:
        rewrite_record(record, log_line)
        return True


def _masked_arg(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    masked = log_safe(mask_text(text))
    # An object whose text holds no PII, control character or excess stays itself, so
    # ``%r``/``%d`` formatting is unchanged.
    return masked if masked != text or isinstance(value, str) else value


def _safe_message(record: logging.LogRecord) -> None:
    """The record's message masked and escaped; one too long for a line is formatted and cut whole,
    since cutting a format string could leave half a ``%s`` its arguments no longer fit."""
    if not isinstance(record.msg, str):
        return
    if len(record.msg) <= MAX_LOG_MESSAGE:
        record.msg = log_safe(mask_text(record.msg), MAX_LOG_MESSAGE)
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is still logged, without its arguments
        message = record.msg
    record.msg, record.args = log_line(message), None


def _fold_what_only_formatting_shows(record: logging.LogRecord) -> None:
    """Masking the message and each argument apart misses what they make together: ``"openid=%s"``
    with the openid as its argument, a phone number cut over two arguments, a lone dict argument
    (logging keeps it as the mapping, each value masked without its key, then prints it whole). When
    the formatted message still holds anything to mask, it replaces message and arguments."""
    if not record.args:
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is still logged, just not rewritten
        return
    if mask_text(message) != message:
        record.msg, record.args = log_line(message), None


def mask_record_in_place(record: logging.LogRecord) -> None:
    """Mask the record's message, each argument and its traceback, keeping the shape of ``args``;
    escape control characters in the message and arguments and cut long ones (``log_safe``).

    Formatters such as uvicorn's access log unpack ``record.args`` themselves, so the arguments
    are masked one by one rather than folded into the message. A traceback keeps its lines.
    """
    if isinstance(record.args, tuple):
        record.args = tuple(_masked_arg(a) for a in record.args)
    elif isinstance(record.args, Mapping):
        record.args = {k: _masked_arg(v) for k, v in record.args.items()}
    _safe_message(record)
    _fold_what_only_formatting_shows(record)
    if record.exc_info and not record.exc_text:
        traceback = logging.Formatter().formatException(record.exc_info)
        record.exc_text = _TRACEBACK_CONTROL_RE.sub(_escaped, mask_text(traceback))


def install_masking_everywhere() -> None:
    """Mask every log record of every logger at creation, whatever handlers and formatters it meets.

    Handler filters miss loggers that do not propagate to the root (uvicorn's access log has its
    own handler), so the masking sits in the record factory, which every logger goes through.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "masks_pii", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        mask_record_in_place(record)
        return record

    factory.masks_pii = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def install_masking_filter(logger: logging.Logger | None = None) -> None:
    """Mask every record at creation, and attach the filter to ``logger`` (root by default) and its handlers."""
    install_masking_everywhere()
    target = logger or logging.getLogger()
    if not any(isinstance(f, MaskingFilter) for f in target.filters):
        target.addFilter(MaskingFilter())
    for handler in target.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
