"""``journeys export policies|claims --out FILE.csv``: the other two kinds ``journeys import`` takes, in its
columns (docs/import.md), so that customers, policies and claims exported from one database and imported
into another give back the same book. Before, only customers could be exported: a book moved by export
and import lost every policy and claim, and with them the renewal and claim journeys.

Neither kind holds personal data beyond the customer's external id (no mask applies); every export is
audited and appears whole or not at all, as the customers' (``store.export``). Dates are ISO dates, times
in UTC with their offset, amounts as Python writes a float (read back as the same float).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from store.bulk_writer import CLAIM, CUSTOMER, POLICY
from store.export import (
    BATCH,
    ExportError,
    ExportReport,
    audit_and_place,
    export_workspace,
    os_user,
    require_schema,
    write_rows,
)
from store.importing.reading import CLAIM_COLUMNS, POLICY_COLUMNS

KINDS = {"policies": POLICY_COLUMNS, "claims": CLAIM_COLUMNS}
AUDITED_AS = {"policies": "policy", "claims": "claim"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        from store.clock import as_utc

        return as_utc(value).isoformat()  # with its offset: the import does not read it in its --assume-tz
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _rows(conn: Connection, kind: str) -> Iterator[list[str]]:
    """The rows of ``kind`` in id order, each in the import's columns, in batches."""
    rows = POLICY if kind == "policies" else CLAIM
    own_policy = POLICY.alias("own_policy")
    joined = rows.join(CUSTOMER, CUSTOMER.c.id == rows.c.customer_id)
    extra: list[Any] = []
    if kind == "claims":
        joined = joined.outerjoin(own_policy, own_policy.c.id == rows.c.policy_id)
        extra = [own_policy.c.external_id.label("policy_external_id")]
    last = 0
    while True:
        query = (select(rows, CUSTOMER.c.external_id.label("customer_external_id"), *extra)
                 .select_from(joined).where(rows.c.id > last).order_by(rows.c.id).limit(BATCH))
        found = conn.execute(query).mappings().all()
        if not found:
            return
        for r in found:
            yield [_cell(r[column]) for column in KINDS[kind]]
        last = found[-1]["id"]


def export_records(url: str, kind: str, out: Path | str, *, actor: str | None = None) -> ExportReport:
    """Write every row of ``kind`` (policies or claims) to ``out`` as CSV; see the module doc."""
    out = Path(out)
    if kind not in KINDS:
        raise ExportError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    if not out.parent.is_dir():
        raise ExportError(f"folder {out.parent} does not exist")
    who = (actor or "").strip() or os_user()
    with export_workspace(url, out) as (engine, tmp):
        with engine.connect() as conn:
            require_schema(engine, conn)
            rows = write_rows(tmp, list(KINDS[kind]), _rows(conn, kind))
        audit_id = audit_and_place(engine, tmp, out, who, AUDITED_AS[kind],
                                   {"file": out.name, "rows": rows, "columns": list(KINDS[kind])})
        return ExportReport(out, rows, True, who, audit_id)
