"""Reading an import file: the columns each kind takes, and the checks of the file, its header and its cells.

The whole file is read once before anything is written (``check_file``); a file or header that
cannot be used is an :class:`ImportFileError`. A cell no column takes (``cell_problems``) makes
its row a bad row, not the file a bad file.
"""

from __future__ import annotations

import codecs
import difflib
import math
import re
from pathlib import Path

from store.importing import fields as f
from store.importing.records import read_records
from store.importing.rejects import REJECTS_COLUMNS
from store.masking import mask_text

# consent_<name> columns: each channel's (service) consent, then its marketing consent (PIPL Art. 24).
CONSENT_CHANNELS = ("sms", "wechat", "email", "push", "sms_marketing", "wechat_marketing", "email_marketing",
                    "push_marketing")

CUSTOMER_COLUMNS = (
    "external_id", "name", "phone", "email", "wechat_openid", "push_registration_id", "id_number", "birthday",
    "timezone", "locale", "branch", "tier", "tier_score", "preferred_channels", "last_active_at", "advisor",
    *(f"consent_{c}{suffix}" for c in CONSENT_CHANNELS for suffix in ("", "_source", "_at")),
)
POLICY_COLUMNS = (
    "external_id", "customer_external_id", "product_line", "annual_premium", "start_date", "expiry_date", "status",
    "premium_due_date", "grace_period_end",
)
CLAIM_COLUMNS = (
    "external_id", "customer_external_id", "policy_external_id", "product_line", "filed_at", "settled_at", "amount",
    "status",
)
REQUIRED = {
    "customers": ("external_id", "name"),
    "policies": ("external_id", "customer_external_id", "product_line", "annual_premium", "start_date", "expiry_date"),
    "claims": ("external_id", "customer_external_id", "filed_at", "amount"),
}
KNOWN = {"customers": CUSTOMER_COLUMNS, "policies": POLICY_COLUMNS, "claims": CLAIM_COLUMNS}
ATTRIBUTE_PREFIX = "attr."
# ``journeys export customers`` (store.export) writes the customer columns above and this one, by
# which the import knows the file for an export: its rows with it set are skipped (store.importing).
EXPORT_COLUMN = "anonymised_at"
# A masked export names each masked column so ("phone (masked)"): such a file is for reading only,
# and importing it would write masked names over real ones.
MASKED_SUFFIX = " (masked)"


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable, not UTF-8, bad header, no data key)."""


# A cell longer than this is one bad row (``cell_problems``): no column needs to reach it.
MAX_CELL = 10_000


def encoding_problem(encoding: str) -> str | None:
    """Why ``encoding`` cannot read a CSV file, or None: a fault of the encoding named, whatever the file
    (the command line names the option for it, not the file)."""
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        return f"unknown encoding {encoding!r} (e.g. utf-8, gbk, gb18030, utf-16)"
    # rot13, base64, hex, zlib are codecs too, but not of text: open() refuses them with a LookupError.
    if not getattr(codec, "_is_text_encoding", True):
        return f"{encoding!r} is not a text encoding (e.g. utf-8, gbk, gb18030, utf-16)"
    return None


def check_file(path: Path, encoding: str) -> list[str]:
    """Read the whole file once before writing anything; returns the header."""
    # A folder passes exists() but not is_file(): "no such file" would send its owner looking for a typo.
    if path.is_dir():
        raise ImportFileError("is a folder; give a CSV file")
    if not path.is_file():
        raise ImportFileError("no such file")
    wrong = encoding_problem(encoding)
    if wrong is not None:
        raise ImportFileError(wrong)
    header: list[str] | None = None
    line = 0  # first line of the last record read
    try:
        for record in read_records(path, encoding):
            line = record.line
            if header is None:
                if record.problem:
                    raise ImportFileError(f"line {line}, the header: {record.problem}")
                header = record.fields
    except UnicodeError:  # also UTF-16's "stream does not start with BOM", which is no UnicodeDecodeError
        raise ImportFileError(f"not {encoding} text (near line {line + 1}); {_what_to_do(path, encoding)}") from None
    except OSError as exc:
        raise ImportFileError(f"cannot be read ({exc.strerror or exc})") from None
    if header is None or not any(h.strip() for h in header):
        raise ImportFileError("the file is empty: the first line must name the columns")
    if _utf8_beyond_latin(path, encoding):
        raise ImportFileError(f"the file is UTF-8 text, not {encoding}: read as {encoding}, its Chinese would be "
                              "stored garbled (张伟 as 寮犱紵); leave out --encoding")
    return header


# A character UTF-8 writes in three bytes or more: every Chinese one, and the byte order mark.
_WIDE = re.compile("[\u0800-\U0010ffff]")


def _utf8_beyond_latin(path: Path, encoding: str) -> bool:
    """Whether a file read in another encoding than UTF's is UTF-8 holding Chinese (or its byte order mark).

    GBK reads most UTF-8 Chinese without an error, as other characters: 16 of 20 common names (张伟 as
    寮犱紵), so a UTF-8 file imported with the ``--encoding gbk`` of last month's file went in whole, its
    names garbled for every message. GBK text, the other way round, is valid UTF-8 of such characters
    by accident only in a few bytes, not over a file. Stops at the first byte that is no UTF-8."""
    if codecs.lookup(encoding).name.startswith("utf"):
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    wide = False
    with path.open("rb") as handle:
        while True:
            block = handle.read(_SAMPLE)
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError:
                return False
            wide = wide or _WIDE.search(text) is not None
            if not block:
                return wide


# Enough of a file to tell its encoding by: a spreadsheet's file shows it in its first rows.
_SAMPLE = 1 << 20
# Tried in this order; GB 18030 reads what GBK does and more, so it is named only when GBK cannot.
_CANDIDATES = ("utf-8-sig", "gbk", "gb18030")


def _what_to_do(path: Path, given: str) -> str:
    """What to do about a file that ``given`` did not decode: the encoding it reads in, never the one
    just given. A file in UTF-8 (a rejects file, an export) imported with ``--encoding gbk`` was told
    to pass ``--encoding gbk``, the option already on the command line."""
    with path.open("rb") as handle:
        sample = handle.read(_SAMPLE)
    given_name = _without_mark(given)
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # a spreadsheet's "Unicode text"
        candidates: tuple[str, ...] = ("utf-16",)
    else:
        candidates = _CANDIDATES
    for candidate in candidates:
        if _without_mark(candidate) == given_name or not _decodes(sample, candidate):
            continue
        if candidate == "utf-8-sig":
            return "it reads as UTF-8: leave out --encoding"
        return f"save the file as UTF-8 CSV or pass --encoding {candidate}"
    return "save the file as UTF-8 CSV"


def _without_mark(encoding: str) -> str:
    """The codec's name, UTF-8 with and without its byte order mark counting as one: a file that
    failed as the one fails as the other."""
    return codecs.lookup(encoding).name.removesuffix("-sig")


def _decodes(sample: bytes, encoding: str) -> bool:
    """Whether ``sample``, the start of a file, is ``encoding`` text (it may end inside a character)."""
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
    except UnicodeError:
        return False
    return True


# What a refused header's message lists at most. A header of a million columns was refused in 22 MB on
# stderr (each one a problem of its own) after 21 s spent on "did you mean" hints nobody could read.
_SHOWN = 10


def named_width(raw_header: list[str]) -> int:
    """How many columns of the header are named: a spreadsheet saves as CSV every column any cell ever
    used, so a header can end in empty names (``external_id,name,,,``) over columns with nothing in them."""
    width = len(raw_header)
    while width and not raw_header[width - 1].strip():
        width -= 1
    return width


def check_header(kind: str, raw_header: list[str]) -> list[str]:
    """The header's column names, trimmed and in lower case, without the empty names it ends in
    (``named_width``); a header that cannot be used raises :class:`ImportFileError`."""
    header = [h.strip().lower() for h in raw_header[:named_width(raw_header)]]
    problems: list[str] = []
    seen: set[str] = set()
    for number, name in enumerate(header, start=1):
        if not name:
            problems.append(f"column {number} has no name")
        elif name in seen:
            problems.append(f"column {mask_text(name)[:40]!r} appears twice")
        seen.add(name)
    if any(name.endswith(MASKED_SUFFIX) for name in header):
        raise ImportFileError("a masked export cannot be imported: its personal data is masked "
                              "(export with --unmasked --actor NAME to move customers)")
    if not any(_takes(kind, name) for name in header):
        # A file without its header row: line 1 is a customer, whose name, phone and ID number were
        # printed as "unknown column" after "unknown column".
        raise ImportFileError(f"line 1 names none of the columns of {kind} ({', '.join(REQUIRED[kind])}, …); "
                              "the first line must name the columns: is the file's header row missing?")
    missing = [c for c in REQUIRED[kind] if c not in header]
    if missing:
        problems.append(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for name in header:
        if not name or _takes(kind, name, attributes=False):
            continue
        if kind == "customers" and name.startswith(ATTRIBUTE_PREFIX) and len(name) > len(ATTRIBUTE_PREFIX):
            problems += _attribute_column_problems(name)
            continue
        # A hint only for the problems shown: beyond them it would be computed for nobody.
        guess = difflib.get_close_matches(name, KNOWN[kind], n=1) if len(problems) < _SHOWN else []
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        problems.append(f"unknown column {mask_text(name)[:40]!r}{hint}")
    attributes = sum(1 for name in header if name.startswith(ATTRIBUTE_PREFIX))
    if kind == "customers" and attributes > f.MAX_ATTRIBUTES:
        problems.append(f"{attributes} attr.* columns; a customer has at most {f.MAX_ATTRIBUTES} attributes")
    if kind == "customers":
        for channel in CONSENT_CHANNELS:
            for suffix in ("_source", "_at"):
                if f"consent_{channel}{suffix}" in header and f"consent_{channel}" not in header:
                    problems.append(f"column consent_{channel}{suffix} needs the column consent_{channel}")
    if len(problems) > _SHOWN:
        problems[_SHOWN:] = [f"and {len(problems) - _SHOWN:,} more problems with the header"]
    if problems:
        raise ImportFileError("; ".join(problems))
    return header


def _takes(kind: str, name: str, *, attributes: bool = True) -> bool:
    """Whether a file of ``kind`` has a column ``name`` (``attributes``: an ``attr.*`` one counts)."""
    if name in KNOWN[kind] or name in REJECTS_COLUMNS or (kind, name) == ("customers", EXPORT_COLUMN):
        return True
    return attributes and kind == "customers" and name.startswith(ATTRIBUTE_PREFIX)


def attributes_problem(attributes: dict[str, object]) -> str | None:
    """Why a customer's attributes from the API could not come back from an export of the book (a
    column per name, read as ``check_header`` reads it), or None: a blank or upper-case name, one with a
    space at its end, one the header refuses, or more than a customer may have."""
    if len(attributes) > f.MAX_ATTRIBUTES:
        return f"{len(attributes)} attributes; a customer has at most {f.MAX_ATTRIBUTES}"
    for key in attributes:
        column = ATTRIBUTE_PREFIX + key
        if not key.strip() or column != column.strip().lower():
            return f"attribute name {key[:20]!r} must be lower case and not blank, with no space at its end"
        wrong = _attribute_column_problems(ATTRIBUTE_PREFIX + key)
        if wrong:
            return "; ".join(wrong)
        if problem := _attribute_value_problem(column, attributes[key]):
            return problem
    return None


def _attribute_value_problem(column: str, value: object) -> str | None:
    """Why ``value`` is not what an ``attr.*`` cell holds once read (``fields.attribute``): one text, number,
    true or false. A list or a mapping could be neither exported as a column nor compared by a condition."""
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return None
    if isinstance(value, str):
        if len(value) > f.MAX_ATTRIBUTE_VALUE:
            return f"{column} is longer than {f.MAX_ATTRIBUTE_VALUE} characters"
        return f.control_problem(column, value, lines=True)
    what = ("a list" if isinstance(value, list | tuple) else "a mapping" if isinstance(value, dict)
            else "null" if value is None else "not a number")
    return f"{column} holds one value (text, a number, true or false), not {what}"


def _attribute_column_problems(name: str) -> list[str]:
    key = name[len(ATTRIBUTE_PREFIX):]
    problems = []
    if len(key) > f.MAX_ATTRIBUTE_NAME:
        problems.append(f"column {name[:20]!r}…: an attribute name has at most {f.MAX_ATTRIBUTE_NAME} characters")
    control = f.control_problem("a column name", name)
    if control:
        problems.append(control)
    return problems


def width_problem(width: int, raw_width: int, fields: list[str]) -> tuple[list[str], str | None]:
    """A row's cells under the ``width`` named columns (``named_width``) of a header ``raw_width``
    wide, and why the row does not fit the header, or None. Cells past the named columns must be empty;
    they are dropped, so that a row costs its named cells only (a spreadsheet's row can carry a
    million empty ones), and the rejects file has the named columns only."""
    if len(fields) < width:
        return fields, f"{len(fields)} fields where the header has {width}"
    stray = next((i for i in range(width, len(fields)) if fields[i].strip()), None)
    if stray is None:
        return fields[:width], None
    if len(fields) > raw_width:  # e.g. a comma in a value that is not quoted
        return fields[:width], f"{len(fields)} fields where the header has {raw_width}"
    return fields[:width], f"field {stray + 1} has a value, but the header gives its column no name"


def cell_problems(header: list[str], fields: list[str]) -> list[str]:
    """What no column takes, checked before any cell is parsed: an oversized cell, a control
    character other than a line break or tab (a NUL stops PostgreSQL)."""
    problems = []
    for i, cell in enumerate(fields):
        column = header[i] if i < len(header) else f"field {i + 1}"
        if len(cell) > MAX_CELL:
            problems.append(f"{column} is longer than {MAX_CELL:,} characters")
            continue
        control = f.control_problem(column, cell, lines=True)
        if control:
            problems.append(control)
    return problems
