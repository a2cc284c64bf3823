"""``journeys import customers|policies|claims FILE.csv``: upsert rows from another system by external id.

The columns are documented in ``docs/import.md``. The rules, in short:

- The file is checked as a whole first (encoding, header): a file that cannot be used
  raises :class:`ImportFileError` and nothing is written.
- Each data row is validated on its own; a bad row is reported as ``(line, reason)``
  (line in the file, header = line 1) and written to the rejects file with a
  ``reason`` column; every good row is imported. A record that is not well-formed CSV (a
  stray quote) is a bad row too: reading goes on at its next line (``records``).
- A file with the ``anonymised_at`` column is an export (``store.export``): its cells are
  unescaped as a rejects file's are, and a row with ``anonymised_at`` set is skipped
  (:class:`Skipped`), not imported.
- Rows are upserted on ``external_id`` (``INSERT … ON CONFLICT DO UPDATE``), so
  importing the same file again changes nothing and a corrected file updates rows
  in place. A column present in the header is authoritative (an empty cell clears
  the value); a column left out of the header leaves stored values alone.
- Work is done in chunks: one query resolves the customer (and policy) ids a chunk
  refers to, one reads the rows it will update, one statement upserts them.
- Reasons never contain an unmasked phone number, e-mail address or ID number.

The records of the file are read in ``records``, the file, header and cell checks are in
``reading``, the rejects file in ``rejects``, and each kind's parsing and upserts in ``upserts``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from store.bulk_writer import CUSTOMER
from store.clock import known_zone, utcnow
from store.crypto import DataKeyError, FieldCipher, load_key
from store.db import make_engine
from store.importing.reading import (
    ATTRIBUTE_PREFIX,
    EXPORT_COLUMN,
    ImportFileError,
    cell_problems,
    check_file,
    check_header,
    width_problem,
)

# Re-exported: the API's policy checks (console.api_policies) take the import's required columns here.
from store.importing.reading import REQUIRED as REQUIRED
from store.importing.records import read_records
from store.importing.rejects import RejectsWriter, as_given, is_rejects_file, rejects_encoding
from store.importing.upserts import Job, Row
from store.masking import mask_text

__all__ = ["KINDS", "ImportFileError", "ImportReport", "Rejected", "Skipped", "default_rejects_path", "import_csv"]

KINDS = ("customers", "policies", "claims")
CHUNK = 1000
DEFAULT_ASSUMED_TZ = "Asia/Shanghai"


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


@dataclass(frozen=True)
class Skipped(Rejected):
    """A row left out on purpose, not for a fault: an anonymised customer in an export."""


# What an export of an anonymised customer holds is no person any more: its external id is the
# anonymised row's own (``anonymised-<id>``, which in another database names another row) and every
# personal field is empty. Importing it would only add, or overwrite, a row that is no one.
ANONYMISED = "skipped: an anonymised customer (anonymised_at is set); nothing of a person is left to import"


@dataclass
class ImportReport:
    kind: str
    path: Path
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0  # stored rows the file repeats as they are (not written)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    rejects_path: Path | None = None
    # The rejects file is written as the file was (rejects.rejects_encoding): corrected, it is imported
    # again by the same command.
    rejects_encoding: str = "utf-8"

    @property
    def imported(self) -> int:
        return self.inserted + self.updated + self.unchanged

    @property
    def exit_code(self) -> int:
        """0 when every row was imported, 1 when some were rejected."""
        return 1 if self.rejected else 0


def _same_file(one: Path, other: Path) -> bool:
    """Whether two paths name one file. Their resolved names alone missed a hard link and, on a file
    system that ignores case (macOS, Windows), ``Customers.csv`` for ``customers.csv``: the rejects file
    then truncated the file being imported at its first bad row, and every row after it was lost."""
    if one.resolve() == other.resolve():
        return True
    try:
        return os.path.samefile(one, other)
    except OSError:  # the rejects file does not exist yet
        return False


def default_rejects_path(path: Path) -> Path:
    """``customers.csv`` → ``customers.rejects.csv``."""
    if path.suffix.lower() == ".csv":
        return path.with_name(path.stem + ".rejects.csv")
    return path.with_name(path.name + ".rejects.csv")


# --- the import ------------------------------------------------------------------------------------


def import_csv(
    kind: str,
    path: Path | str,
    url: str,
    rejects_path: Path | str | None = None,
    *,
    encoding: str = "utf-8-sig",
    assume_tz: str = DEFAULT_ASSUMED_TZ,
    on_reject: Callable[[Rejected], None] | None = None,
    on_skip: Callable[[Skipped], None] | None = None,
    chunk_size: int = CHUNK,
) -> ImportReport:
    """Import a CSV file of ``kind`` (customers, policies or claims) into the database at ``url``.

    Raises :class:`ImportFileError` for a file that cannot be used at all (nothing is written).
    ``on_reject`` is called for each bad row, in line order, as it is found; ``on_skip`` for each
    row left out on purpose (:data:`ANONYMISED`), in the same order.
    """
    if kind not in KINDS:
        raise ImportFileError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    path = Path(path)
    if not known_zone(assume_tz):
        raise ImportFileError(f"unknown time zone {assume_tz!r}")
    zone = ZoneInfo(assume_tz)
    raw_header = check_file(path, encoding)
    if rejects_path is not None and _same_file(Path(rejects_path), path):
        # It is written while the file is still being read: the rows after the first bad one would go.
        raise ImportFileError("the rejects file cannot be the file being imported")
    header = check_header(kind, raw_header)
    # The rejects file has the named columns: the header's nameless last ones hold nothing (width_problem).
    named_header = raw_header[:len(header)]
    cipher: FieldCipher | None = None
    if kind == "customers" and "id_number" in header:
        try:
            cipher = FieldCipher(load_key())
        except DataKeyError as exc:
            raise ImportFileError(f"the file has an id_number column, which is stored encrypted: {exc}") from None

    notify = (on_reject, on_skip)
    report = ImportReport(kind=kind, path=path, rejects_path=Path(rejects_path) if rejects_path else None,
                          rejects_encoding=rejects_encoding(path, encoding))
    engine = make_engine(url)
    job = Job(kind, header, zone, cipher, utcnow())
    rejects: RejectsWriter | None = None
    try:
        if not inspect(engine).has_table(CUSTOMER.name):
            raise ImportFileError("the database has no schema yet: run `journeys db upgrade` first")
        records = read_records(path, encoding, takes_breaks=lambda column: column.startswith(ATTRIBUTE_PREFIX))
        next(records)  # the header
        # The rejects file and an export write every cell the way import undoes (store.importing.rejects).
        escaped = is_rejects_file(header) or EXPORT_COLUMN in header
        chunk: list[Row] = []
        for record in records:
            fields = record.fields
            if not any(v.strip() for v in fields):
                continue  # a blank line is not a row
            report.rows += 1
            problem: str | None
            if record.problem:
                fields, problem = fields[:len(header)], record.problem
            else:
                fields, problem = width_problem(len(header), len(raw_header), fields)
            if escaped:
                fields = [as_given(cell) for cell in fields]
            row = Row(record.line, fields, dict(zip(header, fields, strict=False)))
            chunk.append(row)
            if problem:
                row.errors.append(problem)
            if not record.problem:
                row.errors += cell_problems(header, fields)
            if not row.errors and row.cells.get(EXPORT_COLUMN, "").strip():
                row.skipped = ANONYMISED
            if len(chunk) >= chunk_size:
                rejects = _flush(engine, job, chunk, report, rejects, named_header, notify)
                chunk = []
        if chunk:
            rejects = _flush(engine, job, chunk, report, rejects, named_header, notify)
    finally:
        if rejects is not None:
            rejects.close()
        engine.dispose()
    if not report.rejected:
        report.rejects_path = None
    return report


def _flush(
    engine: Engine,
    job: Job,
    chunk: list[Row],
    report: ImportReport,
    rejects: RejectsWriter | None,
    raw_header: list[str],
    notify: tuple[Callable[[Rejected], None] | None, Callable[[Skipped], None] | None],
) -> RejectsWriter | None:
    on_reject, on_skip = notify
    with engine.begin() as conn:
        inserted, updated, unchanged = job.run(conn, [row for row in chunk if row.skipped is None])
    report.inserted += inserted
    report.updated += updated
    report.unchanged += unchanged
    for row in chunk:
        if row.skipped is not None:
            skipped = Skipped(row.line, row.skipped)
            report.skipped.append(skipped)
            if on_skip:
                on_skip(skipped)
            continue
        if not row.errors:
            continue
        # An external id may be the customer's phone number (a small CRM's key): "repeats line 2" and
        # "unknown customer external id" showed it as it is.
        reason = mask_text("; ".join(row.errors))
        rejected = Rejected(row.line, reason)
        report.rejected.append(rejected)
        if rejects is None:
            if report.rejects_path is None:
                report.rejects_path = default_rejects_path(report.path)
            rejects = RejectsWriter(report.rejects_path, raw_header, report.rejects_encoding)
        rejects.write(row.line, row.fields, reason)
        if on_reject:
            on_reject(rejected)
    return rejects
