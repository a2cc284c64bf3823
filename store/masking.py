"""Masking of personal data wherever a person or a log reads it (PIPL, GB/T 35273)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any


def mask_phone(phone: str | None) -> str:
    """``+8613812345678`` → ``138****5678``: the national number, middle four hidden."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if phone.startswith("+86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_email(email: str | None) -> str:
    if not email:
        return ""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_id_number(id_number: str | None) -> str:
    """Resident ID: first 3 and last 4 kept (``110***********1234``)."""
    if not id_number:
        return ""
    if len(id_number) <= 7:
        return "*" * len(id_number)
    return f"{id_number[:3]}{'*' * (len(id_number) - 7)}{id_number[-4:]}"


def mask_name(name: str | None) -> str:
    """Chinese names keep the family name (张**); others the first letter."""
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)


# Mainland mobiles with or without +86, e-mail addresses and 18-digit resident IDs in free text.
_PHONE_RE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{3})\d{11}(\d{3}[\dXx])(?![0-9A-Za-z])")
_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_text(text: str) -> str:
    """Mask every phone number, ID number and e-mail address found in ``text``."""
    text = _ID_RE.sub(lambda m: f"{m.group(1)}***********{m.group(2)}", text)
    text = _PHONE_RE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return _EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


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
    """Rewrites log records so no handler ever sees unmasked PII."""

    def filter(self, record: logging.LogRecord) -> bool:
        rewrite_record(record, mask_text)
        return True


def _masked_arg(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    masked = mask_text(text)
    # An object whose text holds no PII stays itself, so ``%r``/``%d`` formatting is unchanged.
    return masked if masked != text or isinstance(value, str) else value


def mask_record_in_place(record: logging.LogRecord) -> None:
    """Mask the record's message, each argument and its traceback, keeping the shape of ``args``.

    Formatters such as uvicorn's access log unpack ``record.args`` themselves, so the arguments
    are masked one by one rather than folded into the message.
    """
    if isinstance(record.msg, str):
        record.msg = mask_text(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_masked_arg(a) for a in record.args)
    elif isinstance(record.args, Mapping):
        record.args = {k: _masked_arg(v) for k, v in record.args.items()}
    if record.exc_info and not record.exc_text:
        record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))


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
