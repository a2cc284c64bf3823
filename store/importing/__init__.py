"""``journeys import customers|policies|claims FILE.csv``: upsert rows from another system by external id.

The columns are documented in ``docs/import.md``. The rules, in short:

- The file is checked as a whole first (encoding, CSV syntax, header): a file that
  cannot be used raises :class:`ImportFileError` and nothing is written.
- Each data row is validated on its own; a bad row is reported as ``(line, reason)``
  (line in the file, header = line 1) and written to the rejects file with a
  ``reason`` column; every good row is imported.
- Rows are upserted on ``external_id`` (``INSERT … ON CONFLICT DO UPDATE``), so
  importing the same file again changes nothing and a corrected file updates rows
  in place. A column present in the header is authoritative (an empty cell clears
  the value); a column left out of the header leaves stored values alone.
- Work is done in chunks: one query resolves the customer (and policy) ids a chunk
  refers to, one reads the rows it will update, one statement upserts them.
- Reasons never contain an unmasked phone number, e-mail address or ID number.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, inspect, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from store.bulk_writer import CLAIM, CUSTOMER, POLICY, TIER_CHANGE
from store.clock import known_zone, utcnow
from store.crypto import DataKeyError, FieldCipher, load_key
from store.csv_cells import safe_cell
from store.db import make_engine
from store.importing import fields as f
from store.importing.fields import FieldError

__all__ = ["KINDS", "ImportFileError", "ImportReport", "Rejected", "default_rejects_path", "import_csv"]

KINDS = ("customers", "policies", "claims")
CHUNK = 1000
DEFAULT_ASSUMED_TZ = "Asia/Shanghai"
# consent_<name> columns: each channel's (service) consent, then its marketing consent (PIPL Art. 24).
CONSENT_CHANNELS = ("sms", "wechat", "email", "push", "sms_marketing", "wechat_marketing", "email_marketing",
                    "push_marketing")

CUSTOMER_COLUMNS = (
    "external_id", "name", "phone", "email", "wechat_openid", "push_registration_id", "id_number", "birthday",
    "timezone", "locale", "branch", "tier", "tier_score", "preferred_channels", "last_active_at",
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
# Columns a rejects file adds; ignored so that a corrected rejects file can be imported as it is.
REJECTS_COLUMNS = ("line", "reason")


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable, not UTF-8, bad header, no data key)."""


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


@dataclass
class ImportReport:
    kind: str
    path: Path
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    rejects_path: Path | None = None

    @property
    def imported(self) -> int:
        return self.inserted + self.updated

    @property
    def exit_code(self) -> int:
        """0 when every row was imported, 1 when some were rejected."""
        return 1 if self.rejected else 0


def default_rejects_path(path: Path) -> Path:
    """``customers.csv`` → ``customers.rejects.csv``."""
    if path.suffix.lower() == ".csv":
        return path.with_name(path.stem + ".rejects.csv")
    return path.with_name(path.name + ".rejects.csv")


# --- reading ---------------------------------------------------------------------------------------


# The csv module refuses a whole file over one cell longer than its limit (131,072 characters by
# default). A cell that long is one bad row, not a bad file: it is read (up to READ_LIMIT, past which
# the file is taken for broken) and its row rejected by MAX_CELL, which no column needs to reach.
READ_LIMIT = 64 * 1024 * 1024
MAX_CELL = 10_000


def _records(path: Path, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, fields) for every record; a quoted field may span lines."""
    # Process-wide, and only ever raised: no reader of ours wants the smaller limit.
    csv.field_size_limit(max(csv.field_size_limit(), READ_LIMIT))
    with path.open(newline="", encoding=encoding) as handle:
        reader = csv.reader(handle, strict=True)
        previous = 0
        for fields in reader:
            start, previous = previous + 1, reader.line_num
            yield start, fields


def _check_file(path: Path, encoding: str) -> list[str]:
    """Read the whole file once before writing anything; returns the header."""
    if not path.is_file():
        raise ImportFileError("no such file")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ImportFileError(f"unknown encoding {encoding!r}") from None
    header: list[str] | None = None
    line = 0  # first line of the last record read
    try:
        for start, fields in _records(path, encoding):
            line = start
            if header is None:
                header = fields
    except UnicodeDecodeError:
        raise ImportFileError(
            f"not {encoding} text (near line {line + 1}); save the file as UTF-8 CSV or pass --encoding gbk"
        ) from None
    except csv.Error as exc:
        raise ImportFileError(f"line {line + 1}: not valid CSV ({exc})") from None
    except OSError as exc:
        raise ImportFileError(f"cannot be read ({exc.strerror or exc})") from None
    if header is None or not any(h.strip() for h in header):
        raise ImportFileError("the file is empty: the first line must name the columns")
    return header


def _check_header(kind: str, raw_header: list[str]) -> list[str]:
    header = [h.strip().lower() for h in raw_header]
    problems: list[str] = []
    seen: set[str] = set()
    for name in header:
        if not name:
            problems.append("a column has no name")
        elif name in seen:
            problems.append(f"column {name!r} appears twice")
        seen.add(name)
    missing = [c for c in REQUIRED[kind] if c not in header]
    if missing:
        problems.append(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for name in header:
        if not name or name in KNOWN[kind] or name in REJECTS_COLUMNS:
            continue
        if kind == "customers" and name.startswith(ATTRIBUTE_PREFIX) and len(name) > len(ATTRIBUTE_PREFIX):
            problems += _attribute_column_problems(name)
            continue
        guess = difflib.get_close_matches(name, KNOWN[kind], n=1)
        problems.append(f"unknown column {name!r}" + (f" (did you mean {guess[0]!r}?)" if guess else ""))
    attributes = sum(1 for name in header if name.startswith(ATTRIBUTE_PREFIX))
    if kind == "customers" and attributes > f.MAX_ATTRIBUTES:
        problems.append(f"{attributes} attr.* columns; a customer has at most {f.MAX_ATTRIBUTES} attributes")
    if kind == "customers":
        for channel in CONSENT_CHANNELS:
            for suffix in ("_source", "_at"):
                if f"consent_{channel}{suffix}" in header and f"consent_{channel}" not in header:
                    problems.append(f"column consent_{channel}{suffix} needs the column consent_{channel}")
    if problems:
        raise ImportFileError("; ".join(problems))
    return header


def _attribute_column_problems(name: str) -> list[str]:
    key = name[len(ATTRIBUTE_PREFIX):]
    problems = []
    if len(key) > f.MAX_ATTRIBUTE_NAME:
        problems.append(f"column {name[:20]!r}…: an attribute name has at most {f.MAX_ATTRIBUTE_NAME} characters")
    control = f.control_problem("a column name", name)
    if control:
        problems.append(control)
    return problems


def _cell_problems(header: list[str], fields: list[str]) -> list[str]:
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


# --- the import ------------------------------------------------------------------------------------


@dataclass
class _Row:
    line: int
    fields: list[str]
    cells: dict[str, str]
    values: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def import_csv(
    kind: str,
    path: Path | str,
    url: str,
    rejects_path: Path | str | None = None,
    *,
    encoding: str = "utf-8-sig",
    assume_tz: str = DEFAULT_ASSUMED_TZ,
    on_reject: Callable[[Rejected], None] | None = None,
    chunk_size: int = CHUNK,
) -> ImportReport:
    """Import a CSV file of ``kind`` (customers, policies or claims) into the database at ``url``.

    Raises :class:`ImportFileError` for a file that cannot be used at all (nothing is written).
    ``on_reject`` is called for each bad row, in line order, as it is found.
    """
    if kind not in KINDS:
        raise ImportFileError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    path = Path(path)
    if not known_zone(assume_tz):
        raise ImportFileError(f"unknown time zone {assume_tz!r}")
    zone = ZoneInfo(assume_tz)
    raw_header = _check_file(path, encoding)
    if rejects_path is not None and Path(rejects_path).resolve() == path.resolve():
        # It is written while the file is still being read: the rows after the first bad one would go.
        raise ImportFileError("the rejects file cannot be the file being imported")
    header = _check_header(kind, raw_header)
    cipher: FieldCipher | None = None
    if kind == "customers" and "id_number" in header:
        try:
            cipher = FieldCipher(load_key())
        except DataKeyError as exc:
            raise ImportFileError(f"the file has an id_number column, which is stored encrypted: {exc}") from None

    report = ImportReport(kind=kind, path=path, rejects_path=Path(rejects_path) if rejects_path else None)
    engine = make_engine(url)
    job = _Job(kind, header, zone, cipher, utcnow())
    rejects: _RejectsWriter | None = None
    try:
        if not inspect(engine).has_table(CUSTOMER.name):
            raise ImportFileError("the database has no schema yet: run `journeys db upgrade` first")
        records = _records(path, encoding)
        next(records)  # the header
        rejects_file = _is_rejects_file(header)
        chunk: list[_Row] = []
        for line, fields in records:
            if not any(v.strip() for v in fields):
                continue  # a blank line is not a row
            if rejects_file:
                fields = [_as_given(cell) for cell in fields]
            report.rows += 1
            chunk.append(_Row(line, fields, dict(zip(header, fields, strict=False))))
            if len(fields) != len(header):
                chunk[-1].errors.append(f"{len(fields)} fields where the header has {len(header)}")
            chunk[-1].errors += _cell_problems(header, fields)
            if len(chunk) >= chunk_size:
                rejects = _flush(engine, job, chunk, report, rejects, raw_header, on_reject)
                chunk = []
        if chunk:
            rejects = _flush(engine, job, chunk, report, rejects, raw_header, on_reject)
    finally:
        if rejects is not None:
            rejects.close()
        engine.dispose()
    if not report.rejected:
        report.rejects_path = None
    return report


# The rejects file is opened in a spreadsheet to be corrected, so a cell that would run there as a
# formula gets the apostrophe spreadsheets read as "text" (store.csv_cells). For the round trip to
# give back every value exactly, the writer also gives one to a value that starts with an apostrophe,
# and the import of a rejects file (one with the line and reason columns) drops exactly one leading
# apostrophe from every cell: the two are inverse whatever the value. A rejects file corrected in a
# spreadsheet and saved again comes back with the spreadsheet's own text prefix consumed, so a
# formula-like value is then written without it and taken as it is.
_TEXT_PREFIX = "'"


def _rejects_cell(value: str) -> str:
    return _TEXT_PREFIX + value if value.startswith(_TEXT_PREFIX) else safe_cell(value)


def _as_given(cell: str) -> str:
    """A rejects file's cell as the row first gave it (undoes ``_rejects_cell``)."""
    return cell[len(_TEXT_PREFIX):] if cell.startswith(_TEXT_PREFIX) else cell


def _is_rejects_file(header: list[str]) -> bool:
    return all(column in header for column in REJECTS_COLUMNS)


class _RejectsWriter:
    """The rejects file: the bad rows as they were (escaped only as ``_rejects_cell`` says, which
    importing the file undoes), plus line and reason. Created only if needed."""

    def __init__(self, path: Path, header: list[str]) -> None:
        # The rows hold the same personal data as the input: readable by the owner only.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._handle = open(descriptor, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._writer = csv.writer(self._handle)
        kept = [h for h in header if h.strip().lower() not in REJECTS_COLUMNS]
        self._keep = [i for i, h in enumerate(header) if h.strip().lower() not in REJECTS_COLUMNS]
        self._writer.writerow([safe_cell(h) for h in [*kept, "line", "reason"]])

    def write(self, row: _Row, reason: str) -> None:
        cells = (row.fields[i] if i < len(row.fields) else "" for i in self._keep)
        self._writer.writerow([*(_rejects_cell(c) for c in cells), row.line, safe_cell(reason)])

    def close(self) -> None:
        self._handle.close()


def _flush(
    engine: Engine,
    job: _Job,
    chunk: list[_Row],
    report: ImportReport,
    rejects: _RejectsWriter | None,
    raw_header: list[str],
    on_reject: Callable[[Rejected], None] | None,
) -> _RejectsWriter | None:
    with engine.begin() as conn:
        inserted, updated = job.run(conn, chunk)
    report.inserted += inserted
    report.updated += updated
    for row in chunk:
        if not row.errors:
            continue
        reason = "; ".join(row.errors)
        rejected = Rejected(row.line, reason)
        report.rejected.append(rejected)
        if rejects is None:
            if report.rejects_path is None:
                report.rejects_path = default_rejects_path(report.path)
            rejects = _RejectsWriter(report.rejects_path, raw_header)
        rejects.write(row, reason)
        if on_reject:
            on_reject(rejected)
    return rejects


def _upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], update: Sequence[str]) -> None:
    if not rows:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.external_id], set_={c: stmt.excluded[c] for c in update}
    )
    conn.execute(stmt, list(rows))


def _ids(conn: Connection, table: Table, external_ids: set[str], *columns: str) -> dict[str, Any]:
    """external_id → row (id and ``columns``) for the given external ids, in one query."""
    if not external_ids:
        return {}
    cols = [table.c.external_id, table.c.id, *(table.c[c] for c in columns)]
    rows = conn.execute(select(*cols).where(table.c.external_id.in_(sorted(external_ids)))).all()
    return {r.external_id: r for r in rows}


def _bounded_text(column: str, max_length: int) -> Callable[[str], str]:
    return lambda raw: f.text(column, raw, max_length)


def _datetime_in(column: str, zone: ZoneInfo) -> Callable[[str], datetime]:
    return lambda raw: f.iso_datetime(column, raw, zone)


# Policy columns a file may leave out (docs/import.md); the others are required.
POLICY_OPTIONAL = ("status", "premium_due_date", "grace_period_end")


class _Job:
    def __init__(self, kind: str, header: list[str], zone: ZoneInfo, cipher: FieldCipher | None, now: datetime):
        self.kind = kind
        self.header = header
        self.present = set(header)
        self.zone = zone
        self.cipher = cipher
        self.now = now
        self.seen: dict[str, int] = {}  # external id → line that imported it
        self.attribute_columns = [c for c in header if c.startswith(ATTRIBUTE_PREFIX)]

    # Each kind: parse cells, resolve references, upsert. Returns (inserted, updated).
    def run(self, conn: Connection, chunk: list[_Row]) -> tuple[int, int]:
        for row in chunk:
            if not row.errors:
                self._parse(row)
        if self.kind == "customers":
            return self._customers(conn, chunk)
        if self.kind == "policies":
            return self._policies(conn, chunk)
        return self._claims(conn, chunk)

    def _take(self, row: _Row, column: str, parse: Callable[[str], Any], *, optional: bool = True) -> None:
        if column not in self.present:
            return
        raw = row.cells.get(column, "")
        if not raw.strip():
            if optional:
                row.values[column] = None
            else:
                row.errors.append(f"{column} is empty")
            return
        try:
            row.values[column] = parse(raw)
        except FieldError as exc:
            row.errors.append(str(exc))

    def _parse(self, row: _Row) -> None:
        take, zone = self._take, self.zone
        take(row, "external_id", lambda v: f.text("external_id", v, 64), optional=False)
        if self.kind == "customers":
            take(row, "name", lambda v: f.text("name", v, 128), optional=False)
            take(row, "phone", f.phone)
            take(row, "email", f.email)
            take(row, "wechat_openid", lambda v: f.text("wechat_openid", v, 64))
            take(row, "push_registration_id", lambda v: f.text("push_registration_id", v, 64))
            take(row, "id_number", f.id_number)
            take(row, "birthday", lambda v: f.iso_date("birthday", v))
            take(row, "timezone", f.timezone)
            take(row, "locale", f.locale)
            take(row, "branch", lambda v: f.text("branch", v, 64))
            take(row, "tier", f.tier)
            take(row, "tier_score", f.score)
            take(row, "preferred_channels", f.channels)
            take(row, "last_active_at", lambda v: f.iso_datetime("last_active_at", v, zone))
            for channel in CONSENT_CHANNELS:
                name = f"consent_{channel}"
                take(row, name, functools.partial(f.consent, name))
                take(row, f"{name}_source", _bounded_text(f"{name}_source", 64))
                take(row, f"{name}_at", _datetime_in(f"{name}_at", zone))
            for column in self.attribute_columns:
                take(row, column, functools.partial(f.attribute, column))
            birthday = row.values.get("birthday")
            if birthday is not None and birthday > self.now.date():
                row.errors.append(f"birthday {birthday.isoformat()} is in the future")
        elif self.kind == "policies":
            take(row, "customer_external_id", lambda v: v.strip(), optional=False)
            take(row, "product_line", f.product_line, optional=False)
            take(row, "annual_premium", lambda v: f.amount("annual_premium", v), optional=False)
            take(row, "start_date", lambda v: f.iso_date("start_date", v), optional=False)
            take(row, "expiry_date", lambda v: f.iso_date("expiry_date", v), optional=False)
            take(row, "status", lambda v: f.choice("status", v, f.POLICY_STATUSES))
            take(row, "premium_due_date", lambda v: f.iso_date("premium_due_date", v))
            take(row, "grace_period_end", lambda v: f.iso_date("grace_period_end", v))
            row.errors += [reason for _column, reason in f.policy_date_problems(row.values)]
        else:
            take(row, "customer_external_id", lambda v: v.strip(), optional=False)
            take(row, "policy_external_id", lambda v: v.strip())
            take(row, "product_line", f.product_line)
            take(row, "filed_at", lambda v: f.iso_datetime("filed_at", v, zone), optional=False)
            take(row, "settled_at", lambda v: f.iso_datetime("settled_at", v, zone))
            take(row, "amount", lambda v: f.amount("amount", v), optional=False)
            take(row, "status", lambda v: f.choice("status", v, f.CLAIM_STATUSES))
            settled_bad = any(e.startswith("settled_at") for e in row.errors)
            row.values["status"], problems = f.claim_status(row.values, settled_at_bad=settled_bad)
            row.errors += [reason for _column, reason in problems]

    def _first_time(self, row: _Row) -> bool:
        """Rejects a row whose external id an earlier row of the file already imported."""
        key = row.values["external_id"]
        earlier = self.seen.get(key)
        if earlier is not None:
            row.errors.append(f"external_id {key!r} repeats line {earlier}")
            return False
        self.seen[key] = row.line
        return True

    def _resolve_customers(self, conn: Connection, good: list[_Row]) -> dict[str, Any]:
        wanted = {r.values["customer_external_id"] for r in good}
        found = _ids(conn, CUSTOMER, wanted)
        for row in good:
            if row.values["customer_external_id"] not in found:
                row.errors.append(f"unknown customer external id {row.values['customer_external_id']!r}")
        return found

    def _policies(self, conn: Connection, chunk: list[_Row]) -> tuple[int, int]:
        good = [r for r in chunk if not r.errors]
        customers = self._resolve_customers(conn, good)
        good = [r for r in good if not r.errors and self._first_time(r)]
        existing = _ids(conn, POLICY, {r.values["external_id"] for r in good})
        rows = []
        for row in good:
            v = row.values
            rows.append({
                "external_id": v["external_id"], "customer_id": customers[v["customer_external_id"]].id,
                "product_line": v["product_line"], "annual_premium": v["annual_premium"],
                "start_date": v["start_date"], "expiry_date": v["expiry_date"], "status": v.get("status") or "active",
                "premium_due_date": v.get("premium_due_date"), "grace_period_end": v.get("grace_period_end"),
            })
        update = [c for c in rows[0] if c != "external_id"] if rows else []
        # An optional column the file does not have leaves the stored value alone: a nightly file
        # without due dates must not undo what the API set.
        update = [c for c in update if c not in POLICY_OPTIONAL or c in self.present]
        _upsert(conn, POLICY, rows, update)
        updated = sum(1 for r in rows if r["external_id"] in existing)
        return len(rows) - updated, updated

    def _claims(self, conn: Connection, chunk: list[_Row]) -> tuple[int, int]:
        good = [r for r in chunk if not r.errors]
        customers = self._resolve_customers(conn, good)
        good = [r for r in good if not r.errors]
        wanted = {r.values["policy_external_id"] for r in good if r.values.get("policy_external_id")}
        policies = _ids(conn, POLICY, wanted, "customer_id")
        for row in good:
            ref = row.values.get("policy_external_id")
            if not ref:
                continue
            policy = policies.get(ref)
            if policy is None:
                row.errors.append(f"unknown policy external id {ref!r}")
            elif policy.customer_id != customers[row.values["customer_external_id"]].id:
                row.errors.append(f"policy {ref!r} belongs to another customer")
        good = [r for r in good if not r.errors and self._first_time(r)]
        existing = _ids(conn, CLAIM, {r.values["external_id"] for r in good})
        rows = []
        for row in good:
            v = row.values
            ref = v.get("policy_external_id")
            rows.append({
                "external_id": v["external_id"], "customer_id": customers[v["customer_external_id"]].id,
                "policy_id": policies[ref].id if ref else None, "product_line": v.get("product_line"),
                "filed_at": v["filed_at"],
                "settled_at": v.get("settled_at"), "amount": v["amount"], "status": v["status"],
            })
        update = [c for c in rows[0] if c != "external_id"] if rows else []
        # A column the file does not have leaves the stored value alone (the link, the product line).
        for column, stored in (("policy_external_id", "policy_id"), ("product_line", "product_line")):
            if column not in self.present and stored in update:
                update.remove(stored)
        _upsert(conn, CLAIM, rows, update)
        updated = sum(1 for r in rows if r["external_id"] in existing)
        return len(rows) - updated, updated

    def _customers(self, conn: Connection, chunk: list[_Row]) -> tuple[int, int]:
        good = [r for r in chunk if not r.errors and self._first_time(r)]
        existing = _ids(
            conn, CUSTOMER, {r.values["external_id"] for r in good},
            "tier", "tier_score", "tier_updated_at", "attributes",
            *(f"consent_{c}{s}" for c in CONSENT_CHANNELS for s in ("", "_source", "_at")),
        )
        present, now = self.present, self.now
        attr_columns = self.attribute_columns
        rows: list[dict[str, Any]] = []
        update: list[str] = []
        tier_moves: list[tuple[str, str | None, str, float]] = []
        for row in good:
            v, old = row.values, existing.get(row.values["external_id"])
            out: dict[str, Any] = {
                "external_id": v["external_id"], "name": v["name"], "timezone": "Asia/Shanghai", "locale": "zh-CN",
                "branch": "", "consent_sms": False, "consent_wechat": False, "consent_email": False,
                "preferred_channels": [], "attributes": {}, "created_at": now, "updated_at": now,
            }
            cols = ["name", "updated_at"]
            for column in ("phone", "email", "wechat_openid", "push_registration_id", "last_active_at", "tier_score"):
                if column in present:
                    out[column] = v[column]
                    cols.append(column)
            for column, empty in (("timezone", "Asia/Shanghai"), ("locale", "zh-CN"), ("branch", ""),
                                  ("preferred_channels", [])):
                if column in present:
                    out[column] = v[column] if v[column] is not None else empty
                    cols.append(column)
            if "birthday" in present:
                birthday = v["birthday"]
                out["birthday"] = birthday
                out["birth_md"] = birthday.month * 100 + birthday.day if birthday else None
                cols += ["birthday", "birth_md"]
            if "id_number" in present:
                assert self.cipher is not None  # checked with the header
                out["id_number_enc"] = self.cipher.encrypt(v["id_number"]) if v["id_number"] else None
                cols.append("id_number_enc")
            for channel in CONSENT_CHANNELS:
                name = f"consent_{channel}"
                if name not in present:
                    continue
                out[name], out[f"{name}_source"], out[f"{name}_at"] = self._consent(
                    v[name], v.get(f"{name}_source"), v.get(f"{name}_at"),
                    (old._mapping[name], old._mapping[f"{name}_source"], old._mapping[f"{name}_at"])
                    if old is not None
                    else None,
                )
                cols += [name, f"{name}_source", f"{name}_at"]
            if attr_columns:
                attributes = dict(old.attributes or {}) if old is not None else {}
                for column in attr_columns:
                    key = column[len(ATTRIBUTE_PREFIX):]
                    if v[column] is not None:
                        attributes[key] = v[column]
                    else:
                        attributes.pop(key, None)
                if len(attributes) > f.MAX_ATTRIBUTES:
                    # With those already stored: the row would take the customer past the bound.
                    row.errors.append(f"the customer would have {len(attributes)} attributes; "
                                      f"at most {f.MAX_ATTRIBUTES}")
                    del self.seen[v["external_id"]]
                    continue
                out["attributes"] = attributes
                cols.append("attributes")
            if "tier" in present:
                new_tier, old_tier = v["tier"], old.tier if old is not None else None
                out["tier"] = new_tier
                out["tier_updated_at"] = old.tier_updated_at if old is not None else None
                if new_tier is not None and new_tier != old_tier:
                    out["tier_updated_at"] = now
                    given = v.get("tier_score")
                    score = given if given is not None else (old.tier_score if old is not None else None)
                    tier_moves.append((v["external_id"], old_tier, new_tier, float(score or 0.0)))
                cols += ["tier", "tier_updated_at"]
            rows.append(out)
            update = cols
        _upsert(conn, CUSTOMER, rows, update)
        if tier_moves:
            ids = _ids(conn, CUSTOMER, {m[0] for m in tier_moves})
            conn.execute(
                TIER_CHANGE.insert(),
                [
                    {"customer_id": ids[ext].id, "from_tier": old_t, "to_tier": new_t, "score": score,
                     "dimensions": {}, "reason": "import", "changed_at": now}
                    for ext, old_t, new_t, score in tier_moves
                ],
            )
        updated = sum(1 for r in rows if r["external_id"] in existing)
        return len(rows) - updated, updated

    def _consent(
        self, given: bool | None, source: str | None, at: datetime | None,
        old: tuple[bool, str | None, datetime | None] | None,
    ) -> tuple[bool, str | None, datetime | None]:
        """Consent, its source and time. An unchanged consent keeps its recorded source and time
        (so a re-import does not move them); a new or changed one is stamped now by "import"
        unless the file says where and when it was given."""
        value = bool(given)
        if old is not None and bool(old[0]) == value:
            return value, source or old[1], at or old[2]
        if value or old is not None:
            return value, source or "import", at or self.now
        return False, source, at
