"""The rejects file of an import: the bad rows as the file gave them, plus their line and reason.

It is meant to be corrected and imported again as it is, so what the writer escapes the import of
a rejects file undoes (``rejects_cell`` and ``as_given``).
"""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

from store.csv_cells import safe_cell
from store.private_files import open_private

# Columns a rejects file adds; ignored so that a corrected rejects file can be imported as it is.
REJECTS_COLUMNS = ("line", "reason")

# The rejects file is opened in a spreadsheet to be corrected, so a cell that would run there as a
# formula gets the apostrophe spreadsheets read as "text" (store.csv_cells). For the round trip to
# give back every value exactly, the writer also gives one to a value that starts with an apostrophe,
# and the import of a rejects file (one with the line and reason columns) drops exactly one leading
# apostrophe from every cell: the two are inverse whatever the value. A rejects file corrected in a
# spreadsheet and saved again comes back with the spreadsheet's own text prefix consumed, so a
# formula-like value is then written without it and taken as it is.
_TEXT_PREFIX = "'"


def rejects_cell(value: str) -> str:
    return _TEXT_PREFIX + value if value.startswith(_TEXT_PREFIX) else safe_cell(value)


def as_given(cell: str) -> str:
    """A rejects file's cell as the row first gave it (undoes ``rejects_cell``)."""
    return cell[len(_TEXT_PREFIX):] if cell.startswith(_TEXT_PREFIX) else cell


def rejects_encoding(source: Path, encoding: str) -> str:
    """The encoding the rejects file of ``source``, read in ``encoding``, is written in: the file's own.
    It was always UTF-8 without a byte order mark, so the rejects of a GBK file (Excel's CSV on a
    Chinese Windows) showed garbled names in that spreadsheet, and importing the corrected file with
    the same ``--encoding gbk`` was refused or, where the bytes happened to be GBK too, stored them
    garbled. UTF-8 keeps the byte order mark the file had: a spreadsheet reads UTF-8 text by it."""
    if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig"):
        return encoding
    with source.open("rb") as handle:
        marked = handle.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8
    return "utf-8-sig" if marked else "utf-8"


def is_rejects_file(header: list[str]) -> bool:
    return all(column in header for column in REJECTS_COLUMNS)


class RejectsWriter:
    """The rejects file: the bad rows as they were (escaped only as ``rejects_cell`` says, which
    importing the file undoes), plus line and reason. Created only if needed."""

    def __init__(self, path: Path, header: list[str], encoding: str = "utf-8") -> None:
        # The rows hold the same personal data as the input: readable by the owner only. Their cells
        # came out of the file in ``encoding``, so they go back in it; only a reason's own words (是/否
        # in a consent's) may have no place in a narrow one (latin-1) and are then written as "?".
        self._handle = open_private(path, encoding=encoding, errors="replace")
        self._writer = csv.writer(self._handle)
        kept = [h for h in header if h.strip().lower() not in REJECTS_COLUMNS]
        self._keep = [i for i, h in enumerate(header) if h.strip().lower() not in REJECTS_COLUMNS]
        self._writer.writerow([safe_cell(h) for h in [*kept, "line", "reason"]])

    def write(self, line: int, fields: list[str], reason: str) -> None:
        """One bad row: its ``fields`` as read from ``line`` of the file, and why it was refused."""
        cells = (fields[i] if i < len(fields) else "" for i in self._keep)
        self._writer.writerow([*(rejects_cell(c) for c in cells), line, safe_cell(reason)])

    def close(self) -> None:
        self._handle.close()
