"""How many SMS segments a text costs, the way carriers and Twilio count them.

A text that fits the GSM 03.38 default alphabet is sent as GSM-7: 160 septets in a
single message, 153 per part once it is split (the user data header takes 7). The
extension table characters (``^{}\\[~]|€`` and form feed) are sent as ESC + char and
cost two septets. Any other character (Chinese, emoji, curly quotes) switches the
whole message to UCS-2: 70 UTF-16 code units single, 67 per part; characters outside
the BMP (most emoji) are surrogate pairs and cost two units.

Splitting never cuts an escape sequence or a surrogate pair in half, so a part may
carry one unit less than the nominal size; counting greedily reproduces that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 basic character set (ESC itself, 0x1B, is not a character of its own).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each costs an escape septet plus its own.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE = {"GSM-7": 160, "UCS-2": 70}
MULTIPART = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True)
class SmsLength:
    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int

    def describe(self) -> str:
        unit = "septets" if self.encoding == "GSM-7" else "UTF-16 units"
        return f"{self.segments} segment(s), {self.encoding}, {self.units} {unit}"


_GSM7 = GSM7_BASIC | GSM7_EXTENSION


def is_gsm7(text: str) -> bool:
    return _GSM7.issuperset(text)


def _unit_costs(text: str, encoding: Encoding) -> list[int]:
    if encoding == "GSM-7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def sms_length(text: str) -> SmsLength:
    """Encoding, size in units and number of segments of ``text`` (an empty text is 0 segments)."""
    encoding: Encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    # The total without a loop over the characters in Python (every message sent is counted):
    # the parts are only walked when there is more than one.
    if encoding == "GSM-7":
        units = len(text) + sum(text.count(ch) for ch in GSM7_EXTENSION)
    else:
        units = len(text.encode("utf-16-le", "surrogatepass")) // 2
    if units == 0:
        return SmsLength(encoding, 0, 0)
    if units <= SINGLE[encoding]:
        return SmsLength(encoding, units, 1)
    costs = _unit_costs(text, encoding)
    per_part = MULTIPART[encoding]
    segments, used = 1, 0
    for cost in costs:
        if used + cost > per_part:  # an escape pair or surrogate pair moves whole to the next part
            segments += 1
            used = 0
        used += cost
    return SmsLength(encoding, units, segments)


def sms_segments(text: str) -> int:
    return sms_length(text).segments
