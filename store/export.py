"""``journeys export customers --out FILE.csv``: customers to CSV, masked unless asked otherwise (SPEC §9).

- By default every personal field is masked the way a person may read it
  (``store.masking``): name ``张**``, phone ``138****5678``, e-mail ``z***@example.com``,
  ID number ``110***********1234``, openid first four characters, birthday year only.
- ``unmasked=True`` writes the values themselves (ID numbers decrypted, which needs the
  data key) and requires an ``actor``: who is taking the personal data out.
- Every export writes an ``AuditLog`` row (action ``export``: who, when, which file name,
  how many rows, masked or not) in the same step that makes the file appear: the file is
  written under a temporary name and renamed only once the audit row is committed, so
  there is never an export without its audit row, nor a half-written file.
- The file is created readable by its owner only (0600).
- Anonymised customers are exported as they are stored (nothing personal left).
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from store.clock import utcnow
from store.crypto import DataKeyError, FieldCipher
from store.csv_cells import SafeWriter
from store.db import make_engine
from store.masking import mask_email, mask_id_number, mask_name, mask_phone
from store.models import TIERS, AuditLog, Customer

COLUMNS = (
    "external_id", "name", "phone", "email", "wechat_openid", "id_number", "birthday", "tier", "branch",
    "locale", "timezone", "consent_sms", "consent_wechat", "consent_email", "anonymised_at",
)
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


def _customers(conn: Connection, tier: str | None) -> Iterator[Any]:
    c = Customer.__table__  # type: ignore[attr-defined]
    last = 0
    while True:
        query = select(c).where(c.c.id > last).order_by(c.c.id).limit(BATCH)
        if tier:
            query = query.where(c.c.tier == tier)
        rows = conn.execute(query).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def _row(r: Any, unmasked: bool, cipher: FieldCipher | None) -> list[str]:
    id_number = ""
    if r.id_number_enc is not None:
        # Masked exports still show which ID is which (first 3, last 4) when the key is here.
        id_number = cipher.decrypt(bytes(r.id_number_enc)) if cipher is not None else "(encrypted)"
        if not unmasked and cipher is not None:
            id_number = mask_id_number(id_number)
    birthday = r.birthday.isoformat() if r.birthday else ""
    values = {
        "external_id": r.external_id,
        "name": r.name if unmasked else mask_name(r.name),
        "phone": (r.phone or "") if unmasked else mask_phone(r.phone),
        "email": (r.email or "") if unmasked else mask_email(r.email),
        "wechat_openid": (r.wechat_openid or "") if unmasked else mask_openid(r.wechat_openid),
        "id_number": id_number,
        "birthday": birthday if unmasked or not birthday else birthday[:4] + "-**-**",
        "tier": r.tier or "",
        "branch": r.branch or "",
        "locale": r.locale,
        "timezone": r.timezone,
        "consent_sms": "1" if r.consent_sms else "0",
        "consent_wechat": "1" if r.consent_wechat else "0",
        "consent_email": "1" if r.consent_email else "0",
        "anonymised_at": r.anonymised_at.isoformat() if r.anonymised_at else "",
    }
    return [values[k] for k in COLUMNS]


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
    who = actor or _os_user()
    cipher: FieldCipher | None = None
    engine = make_engine(url)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with engine.connect() as conn:
            if not engine.dialect.has_table(conn, "customer"):
                raise ExportError("the database has no schema yet: run `journeys db upgrade` first")
            c = Customer.__table__  # type: ignore[attr-defined]
            has_ids = conn.execute(select(c.c.id).where(c.c.id_number_enc.is_not(None)).limit(1)).first()
            if has_ids is not None:
                try:
                    cipher = FieldCipher()
                except DataKeyError as exc:
                    if unmasked:
                        raise ExportError(f"ID numbers are stored encrypted: {exc}") from None
            rows = 0
            descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(descriptor, "w", newline="", encoding="utf-8") as handle:
                writer = SafeWriter(handle)
                writer.writerow(COLUMNS)
                for r in _customers(conn, tier):
                    writer.writerow(_row(r, unmasked, cipher))
                    rows += 1
                    if progress is not None and rows % BATCH == 0:
                        progress(BATCH)
        with engine.begin() as conn:
            audit_id = conn.execute(
                AuditLog.__table__.insert().values(  # type: ignore[attr-defined]
                    actor=who[:64], action="export", target_type="customer", target_id="*",
                    detail={"file": out.name, "rows": rows, "unmasked": unmasked, "tier": tier,
                            "columns": list(COLUMNS)},
                    at=utcnow(),
                )
            ).inserted_primary_key
            os.replace(tmp, out)
        return ExportReport(out, rows, unmasked, who, int(audit_id[0]) if audit_id else None)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        engine.dispose()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): the audit row still says it was the command line
        return "cli"
