"""CSV cells that a spreadsheet will not run (CSV/formula injection, OWASP).

Exports and rejects files are opened in Excel or WPS by ops staff. A cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula there (``=HYPERLINK(...)``,
``+cmd|' /C calc'!A0``), so such a cell gets a leading apostrophe, which spreadsheets read
as "text". Plain numbers and phone numbers (``+8613812345678``, ``-12.5``) are left as they
are: they are not formulas, and changing them would break the column for every reader.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9][0-9 ().-]*")


def safe_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


class SafeWriter:
    """``csv.writer`` whose every cell goes through ``safe_cell``."""

    def __init__(self, handle: Any) -> None:
        self._writer = csv.writer(handle)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(v) for v in row])
