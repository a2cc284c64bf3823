"""``journeys export customers --out FILE.csv``: customers to CSV, masked unless asked otherwise (SPEC §9).

- The columns are the customer columns ``journeys import customers`` takes (docs/import.md), an
  ``attr.<name>`` column for each attribute any exported customer has, and ``anonymised_at``; so an
  unmasked export imported into another database gives back the same customers (their tier,
  score, channels, consents with source and time, advisor, attributes, ...). ``id_number`` is a
  column only when an exported customer has one: importing that column needs the data key.
- By default every personal field is masked the way a person may read it
  (``store.masking``): name ``张**``, phone ``138****5678``, e-mail ``z***@example.com``,
  ID number ``110***********1234``, openid and push registration id first four characters,
  birthday year only; each such column is named ``<column> (masked)``, which the import refuses
  (a masked export is for reading, never to be written back over real names), and the free
  ``attr.*`` values, which nothing masks, are left out. Text the source system chose (the external
  id, the branch, where each consent was given) has any phone, e-mail, ID number or openid in it
  masked (``mask_text``).
- ``unmasked=True`` writes the values themselves (ID numbers decrypted, which needs the
  data key) and requires an ``actor``: who is taking the personal data out.
- Every export writes an ``AuditLog`` row (action ``export``: who, when, which file name,
  how many rows, masked or not) in the same step that makes the file appear: the file is
  written under a temporary name and renamed only once the audit row is committed, so
  there is never an export without its audit row, nor a half-written file.
- The file is created readable by its owner only (0600).
- Cells are escaped for spreadsheets as the rejects file's are (``store.importing.rejects``), which
  the import undoes for a file with the ``anonymised_at`` column.
- Anonymised customers are exported as they are stored (nothing personal left), with
  ``anonymised_at`` set; the import skips them, saying so.
- A value comes back from the import as the import reads its cell: an attribute holding text that
  reads as a number or true/false comes back as that number or boolean, a list or object as its
  JSON text, and an attribute name is read in lower case.
"""

from __future__ import annotations

import contextlib
import csv
import getpass
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from store.clock import as_utc, utcnow
from store.crypto import DataKeyError, FieldCipher
from store.db import make_engine
from store.importing.fields import AS_CHANNEL
from store.importing.reading import ATTRIBUTE_PREFIX, CONSENT_CHANNELS, CUSTOMER_COLUMNS, EXPORT_COLUMN, MASKED_SUFFIX
from store.importing.rejects import rejects_cell
from store.masking import mask_email, mask_id_number, mask_name, mask_phone, mask_text
from store.models import TIERS, AppUser, AuditLog, Customer
from store.private_files import open_private

MASKED = ("name", "phone", "email", "wechat_openid", "push_registration_id", "id_number", "birthday")
BATCH = 2000


class ExportError(ValueError):
    """The export cannot be made (no actor for unmasked data, no key, bad tier, no schema)."""


@dataclass
class ExportReport:
    path: Path
    rows: int
    unmasked: bool
    actor: str
    audit_id: int | None = None


def mask_openid(openid: str | None) -> str:
    if not openid:
        return ""
    return openid[:4] + "****" if len(openid) > 4 else "****"


def _customers(conn: Connection, tier: str | None, *columns: str) -> Iterator[Any]:
    c = Customer.__table__  # type: ignore[attr-defined]
    last = 0
    while True:
        query = select(c.c.id, *(c.c[name] for name in columns) if columns else c.c).where(c.c.id > last)
        query = query.order_by(c.c.id).limit(BATCH)
        if tier:
            query = query.where(c.c.tier == tier)
        rows = conn.execute(query).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def _columns(conn: Connection, tier: str | None, unmasked: bool) -> tuple[list[str], bool]:
    """The file's columns, and whether an exported customer has an ID number."""
    keys: set[str] = set()
    has_ids = False
    for r in _customers(conn, tier, "attributes", "id_number_enc"):
        keys.update(r.attributes or {})
        has_ids = has_ids or r.id_number_enc is not None
    columns = [c for c in CUSTOMER_COLUMNS if c != "id_number" or has_ids]
    if unmasked:
        columns += [ATTRIBUTE_PREFIX + key for key in sorted(keys)]
    return [*columns, EXPORT_COLUMN], has_ids


def _moment(value: datetime | None) -> str:
    # With its offset, so that the import does not read it in its --assume-tz.
    return as_utc(value).isoformat() if value is not None else ""


def _attribute(value: Any) -> str:
    """An attribute as the import's ``fields.attribute`` reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # a float's repr keeps its point or exponent, so it is read back as a float
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value, ensure_ascii=False)


def _consent(value: bool | None) -> str:
    return AS_CHANNEL if value is None else "1" if value else "0"


def _row(r: Any, columns: list[str], unmasked: bool, cipher: FieldCipher | None, advisors: dict[int, str]) -> list[str]:
    id_number = ""
    if r.id_number_enc is not None:
        # Masked exports still show which ID is which (first 3, last 4) when the key is here.
        id_number = cipher.decrypt(bytes(r.id_number_enc)) if cipher is not None else "(encrypted)"
        if not unmasked and cipher is not None:
            id_number = mask_id_number(id_number)
    birthday = r.birthday.isoformat() if r.birthday else ""
    values: dict[str, str] = {
        "external_id": r.external_id,
        "name": r.name if unmasked else mask_name(r.name),
        "phone": (r.phone or "") if unmasked else mask_phone(r.phone),
        "email": (r.email or "") if unmasked else mask_email(r.email),
        "wechat_openid": (r.wechat_openid or "") if unmasked else mask_openid(r.wechat_openid),
        "push_registration_id": (r.push_registration_id or "") if unmasked else mask_openid(r.push_registration_id),
        "id_number": id_number,
        "birthday": birthday if unmasked or not birthday else birthday[:4] + "-**-**",
        "timezone": r.timezone,
        "locale": r.locale,
        "branch": r.branch or "",
        "tier": r.tier or "",
        "tier_score": repr(r.tier_score) if r.tier_score is not None else "",
        "preferred_channels": ";".join(r.preferred_channels or []),
        "last_active_at": _moment(r.last_active_at),
        "advisor": advisors.get(r.advisor_id, "") if r.advisor_id is not None else "",
        EXPORT_COLUMN: _moment(r.anonymised_at),
    }
    for channel in CONSENT_CHANNELS:
        name = f"consent_{channel}"
        values[name] = _consent(getattr(r, name))
        values[f"{name}_source"] = getattr(r, f"{name}_source") or ""
        values[f"{name}_at"] = _moment(getattr(r, f"{name}_at"))
    if not unmasked:
        # Text the source system chose (an id, a branch, where a consent was given: "form by 13812345678")
        # is not a personal field, but may hold one; a masked export shows none whole.
        for name in ("external_id", "branch", *(f"consent_{channel}_source" for channel in CONSENT_CHANNELS)):
            values[name] = mask_text(values[name])
    attributes = r.attributes or {}
    return [values[c] if c in values else _attribute(attributes.get(c[len(ATTRIBUTE_PREFIX):])) for c in columns]


def export_customers(
    url: str,
    out: Path | str,
    *,
    unmasked: bool = False,
    actor: str | None = None,
    tier: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Write customers to ``out`` as CSV; see the module doc. Raises ExportError before writing anything."""
    out = Path(out)
    actor = (actor or "").strip()
    if unmasked and not actor:
        raise ExportError("an unmasked export needs --actor NAME: who takes the personal data out is audited")
    if tier is not None and tier not in TIERS:
        raise ExportError(f"unknown tier {tier!r}: one of {', '.join(TIERS)}")
    if not out.parent.is_dir():
        raise ExportError(f"folder {out.parent} does not exist")
    who = actor or os_user()
    cipher: FieldCipher | None = None
    with export_workspace(url, out) as (engine, tmp):
        with engine.connect() as conn:
            require_schema(engine, conn)
            columns, has_ids = _columns(conn, tier, unmasked)
            if has_ids:
                try:
                    cipher = FieldCipher()
                except DataKeyError as exc:
                    if unmasked:
                        raise ExportError(f"ID numbers are stored encrypted: {exc}") from None
            users = AppUser.__table__  # type: ignore[attr-defined]
            advisors: dict[int, str] = {u.id: u.username for u in conn.execute(select(users.c.id, users.c.username))}
            header = [c + MASKED_SUFFIX if c in MASKED and not unmasked else c for c in columns]
            lines = (_row(r, columns, unmasked, cipher, advisors) for r in _customers(conn, tier))
            rows = write_rows(tmp, header, lines, progress)
        audit_id = audit_and_place(engine, tmp, out, who, "customer",
                                   {"file": out.name, "rows": rows, "unmasked": unmasked, "tier": tier,
                                    "columns": columns})
        return ExportReport(out, rows, unmasked, who, audit_id)


@contextlib.contextmanager
def export_workspace(url: str, out: Path) -> Iterator[tuple[Engine, Path]]:
    """The database and the temporary file an export writes before its audit row lands; the file is
    gone and the engine disposed however the export ends, so a failed export leaves nothing behind."""
    engine = make_engine(url)
    tmp = temporary_name(out)
    try:
        yield engine, tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        engine.dispose()


def require_schema(engine: Engine, conn: Connection) -> None:
    if not engine.dialect.has_table(conn, "customer"):
        raise ExportError("the database has no schema yet: run `journeys db upgrade` first")


def temporary_name(out: Path) -> Path:
    """Where an export is written before its audit row is committed (then renamed to ``out``)."""
    return out.with_name(f".{out.name}.{os.getpid()}.tmp")


def write_rows(tmp: Path, header: list[str], rows: Iterable[list[str]],
               progress: Callable[[int], None] | None = None) -> int:
    """The CSV file at ``tmp``, readable by its owner only, its cells escaped for spreadsheets; its row count."""
    count = 0
    with open_private(tmp) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([rejects_cell(cell) for cell in row])
            count += 1
            if progress is not None and count % BATCH == 0:
                progress(BATCH)
    return count


def audit_and_place(engine: Engine, tmp: Path, out: Path, who: str, target: str, detail: dict[str, Any]) -> int | None:
    """The export's audit row, and the file renamed into place in the same step: never one without the other."""
    with engine.begin() as conn:
        audit_id = conn.execute(
            AuditLog.__table__.insert().values(  # type: ignore[attr-defined]
                actor=who[:64], action="export", target_type=target, target_id="*", detail=detail, at=utcnow(),
            )
        ).inserted_primary_key
        os.replace(tmp, out)
    return int(audit_id[0]) if audit_id else None


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): the audit row still says it was the command line
        return "cli"
