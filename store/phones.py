"""Phone numbers: parsing and validation with ``phonenumbers``, stored as E.164.

Mainland numbers are usually written without a country code, so CN is the
default region; numbers written with ``+`` keep their own country.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, PhoneNumberType

DEFAULT_REGION = "CN"

# Numbers SMS can reach. FIXED_LINE_OR_MOBILE covers countries (US, ...) whose numbering
# does not tell the two apart.
_TEXTABLE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


class PhoneError(ValueError):
    """A phone number that cannot be stored. The message never contains the number itself."""


def normalise_phone(raw: str, region: str = DEFAULT_REGION, *, mobile_only: bool = True) -> str:
    """``raw`` as E.164 (``+8613812345678``); raises :class:`PhoneError` with a reason.

    ``mobile_only`` rejects numbers that cannot receive SMS (a mainland landline).
    """
    text = raw.strip()
    if not text:
        raise PhoneError("phone is empty")
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise PhoneError(f"phone cannot be read as a number ({_parse_reason(exc)})") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("phone is not a valid number")
    if mobile_only and phonenumbers.number_type(number) not in _TEXTABLE:
        raise PhoneError("phone is not a mobile number")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def is_valid_cn_mobile(national_number: int) -> bool:
    """Whether an 11-digit mainland number (as an int) is a valid mobile number.

    Builds the PhoneNumber directly: parsing text costs twice as much, and the seeder
    checks a million of them.
    """
    number = PhoneNumber(country_code=86, national_number=national_number)
    return phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in _TEXTABLE


def _parse_reason(exc: NumberParseException) -> str:
    return {
        NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        NumberParseException.NOT_A_NUMBER: "not a number",
        NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        NumberParseException.TOO_SHORT_NSN: "too short",
        NumberParseException.TOO_LONG: "too long",
    }.get(exc.error_type, "unreadable")
