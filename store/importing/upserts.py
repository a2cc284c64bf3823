"""Each kind's rows: their cells parsed, their references resolved, and upserted, a chunk at a time.

One query resolves the customer (and policy) ids a chunk refers to, one reads the rows it will
update, one statement upserts them (``INSERT … ON CONFLICT DO UPDATE`` on ``external_id``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidTag
from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from store.bulk_writer import CLAIM, CUSTOMER, POLICY, TIER_CHANGE, table
from store.consent import consent_time_problem, keeps_opt_out
from store.crypto import FieldCipher, blob_key_id
from store.importing import fields as f
from store.importing.fields import FieldError
from store.importing.reading import ATTRIBUTE_PREFIX, CONSENT_CHANNELS
from store.models import TASK_ROLES, AppUser
from store.retention_keys import stand_in_problem

USER = table(AppUser)
MARKETING = "_marketing"


@dataclass
class Row:
    line: int
    fields: list[str]
    cells: dict[str, str]
    values: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the row is left out on purpose (not an error)


def _upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], update: Sequence[str]) -> None:
    if not rows:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.external_id], set_={c: stmt.excluded[c] for c in update}
    )
    conn.execute(stmt, list(rows))


# Written whenever a row is, so not a change of its own.
_NOT_COMPARED = frozenset({"updated_at"})


def _changed(rows: list[dict[str, Any]], update: Sequence[str], existing: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows to write: new ones, and stored ones the file changes in a column it writes. A nightly
    file that repeats the book is then reported as unchanged and costs no write (a value read back
    as another type than the file's counts as a change: the safe side, it is written again)."""
    compared = [c for c in update if c not in _NOT_COMPARED]

    def differs(row: dict[str, Any]) -> bool:
        old = existing.get(row["external_id"])
        return old is None or any(row[c] != old._mapping[c] for c in compared)

    return [row for row in rows if differs(row)]


def _counts(rows: Sequence[dict[str, Any]], written: Sequence[dict[str, Any]],
            existing: Mapping[str, Any]) -> tuple[int, int, int]:
    """(inserted, updated, unchanged) of a chunk's ``rows``, of which ``written`` were written."""
    inserted = sum(1 for r in rows if r["external_id"] not in existing)
    return inserted, len(written) - inserted, len(rows) - len(written)


def _new_id_problem(external_id: str) -> str | None:
    """Why no row may be created under ``external_id``: not an id the API could name, or one of the purge's."""
    return f.id_problem("external_id", external_id) or stand_in_problem(external_id)


def _no_new_rows_under_unfit_ids(conn: Connection, table: Table, good: list[Row]) -> list[Row]:
    """``good`` but the rows that would create a row under an id ``_new_id_problem`` refuses, which get its
    reason. A stored row (an anonymised customer named again, one created before the rule) is left to the
    checks after."""
    asked = {r.values["external_id"] for r in good if _new_id_problem(r.values["external_id"])}
    if not asked:
        return good
    stored = _ids(conn, table, asked)
    kept = []
    for row in good:
        key = row.values["external_id"]
        if key in asked and key not in stored:
            row.errors.append(_new_id_problem(key) or "")
        else:
            kept.append(row)
    return kept


def _ids(conn: Connection, table: Table, external_ids: set[str], *columns: str, lock: bool = False
         ) -> dict[str, Any]:
    """external_id → row (id and ``columns``) for the given external ids, in one query; ``lock``: the
    rows the chunk will compare and write, locked until it commits (PostgreSQL's FOR UPDATE; a SQLite
    chunk holds the database's write lock already, ``_hold_the_write``)."""
    if not external_ids:
        return {}
    cols = [table.c.external_id, table.c.id, *(table.c[c] for c in columns)]
    query = select(*cols).where(table.c.external_id.in_(sorted(external_ids)))
    rows = conn.execute(query.with_for_update() if lock else query).all()
    return {r.external_id: r for r in rows}


# Any constant of our own: the key of PostgreSQL's advisory lock that chunks of imports take in turn.
_IMPORT_LOCK = 0x4A4F55524E494D50


def _hold_the_write(conn: Connection) -> None:
    """Make the chunk's transaction, before it reads what it compares, the only writer of what it writes.

    A chunk reads the stored rows, decides from them (new or changed, a tier move for the history, a
    consent the customer withdrew through us and the file may not give back) and writes. Read apart
    from the write, two imports of one file each recorded every new customer's tier move (3,000
    customers, 6,000 history rows, each import reporting 3,000 new), and an opt-out committed between
    the read and the write was overwritten by the file's consent. SQLite: the write lock is taken
    first (``BEGIN IMMEDIATE``; pysqlite would begin only at the first write). PostgreSQL: imports take
    turns by an advisory lock, and the stored rows read are locked (``_ids(lock=True)``)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.execute(select(func.pg_advisory_xact_lock(_IMPORT_LOCK)))


def _check_references(
    rows: list[Row], column: str, found: Mapping[str, Any], problem: Callable[[Row, str, Any], str | None],
) -> None:
    """Each row naming something in ``column`` gets the reason ``problem`` gives for what it names
    (``found``'s entry for it, None when there is none), if any."""
    for row in rows:
        ref = row.values.get(column)
        if not ref:
            continue
        reason = problem(row, ref, found.get(ref))
        if reason:
            row.errors.append(reason)


def _advisor_problem(_row: Row, name: str, user: Any) -> str | None:
    """Why ``user`` cannot be a customer's advisor: unknown, deactivated, or a role that does not work tasks."""
    if user is None:
        return f"advisor: no console user {name!r}"
    if not user.active:
        return f"advisor: user {name!r} is deactivated"
    if user.role not in TASK_ROLES:
        return (f"advisor: user {name!r} is {user.role}, who does not work tasks: "
                "an advisor must be an agent or a supervisor")
    return None


def _bounded_text(column: str, max_length: int) -> Callable[[str], str]:
    return lambda raw: f.text(column, raw, max_length)


def _datetime_in(column: str, zone: ZoneInfo) -> Callable[[str], datetime]:
    return lambda raw: f.iso_datetime(column, raw, zone)


# Policy columns a file may leave out (docs/import.md); the others are required.
POLICY_OPTIONAL = ("status", "premium_due_date", "grace_period_end")


class Job:
    def __init__(self, kind: str, header: list[str], zone: ZoneInfo, cipher: FieldCipher | None, now: datetime):
        self.kind = kind
        self.header = header
        self.present = set(header)
        self.zone = zone
        self.cipher = cipher
        self.now = now
        self.seen: dict[str, int] = {}  # external id → line that imported it
        self.attribute_columns = [c for c in header if c.startswith(ATTRIBUTE_PREFIX)]

    # Each kind: parse cells, resolve references, upsert. Returns (inserted, updated, unchanged).
    def run(self, conn: Connection, chunk: list[Row]) -> tuple[int, int, int]:
        """Writes a chunk's good rows in ``conn``'s transaction, which it must begin (nothing run in it yet)."""
        _hold_the_write(conn)
        for row in chunk:
            if not row.errors:
                self._parse(row)
        if self.kind == "customers":
            return self._customers(conn, chunk)
        if self.kind == "policies":
            return self._policies(conn, chunk)
        return self._claims(conn, chunk)

    def _take(
        self, row: Row, column: str, parse: Callable[[str], Any], *, optional: bool = True, empty: Any = None,
    ) -> None:
        if column not in self.present:
            return
        raw = row.cells.get(column, "")
        if not raw.strip():
            if optional:
                row.values[column] = empty
            else:
                row.errors.append(f"{column} is empty")
            return
        try:
            row.values[column] = parse(raw)
        except FieldError as exc:
            row.errors.append(str(exc))

    def _parse(self, row: Row) -> None:
        take, zone = self._take, self.zone
        take(row, "external_id", lambda v: f.text("external_id", v, 64), optional=False)
        if self.kind == "customers":
            take(row, "name", lambda v: f.text("name", v, 128), optional=False)
            take(row, "phone", f.phone)
            take(row, "email", f.email)
            take(row, "wechat_openid", lambda v: f.text("wechat_openid", v, 64))
            take(row, "push_registration_id", f.push_registration_id)
            take(row, "id_number", f.id_number)
            take(row, "birthday", lambda v: f.iso_date("birthday", v))
            take(row, "timezone", f.timezone)
            take(row, "locale", f.locale)
            take(row, "branch", lambda v: f.text("branch", v, 64))
            take(row, "tier", f.tier)
            take(row, "tier_score", f.score)
            take(row, "preferred_channels", f.channels)
            take(row, "last_active_at", lambda v: f.iso_datetime("last_active_at", v, zone))
            take(row, "advisor", lambda v: f.text("advisor", v, 64))
            for channel in CONSENT_CHANNELS:
                name = f"consent_{channel}"
                consent = f.marketing_consent if channel.endswith(MARKETING) else f.consent
                take(row, name, functools.partial(consent, name), empty=False)
                take(row, f"{name}_source", _bounded_text(f"{name}_source", 64))
                take(row, f"{name}_at", _datetime_in(f"{name}_at", zone))
            for column in self.attribute_columns:
                take(row, column, functools.partial(f.attribute, column))
            birthday = row.values.get("birthday")
            if birthday is not None and birthday > self.now.date():
                row.errors.append(f"birthday {birthday.isoformat()} is in the future")
            for channel in CONSENT_CHANNELS:
                column = f"consent_{channel}_at"
                if problem := consent_time_problem(row.values.get(column), self.now):
                    row.errors.append(f"{column} {row.cells[column].strip()} {problem}")
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

    def _first_time(self, row: Row) -> bool:
        """Rejects a row whose external id an earlier row of the file already imported."""
        key = row.values["external_id"]
        earlier = self.seen.get(key)
        if earlier is not None:
            row.errors.append(f"external_id {key!r} repeats line {earlier}")
            return False
        self.seen[key] = row.line
        return True

    def _resolve_customers(self, conn: Connection, good: list[Row]) -> dict[str, Any]:
        found = _ids(conn, CUSTOMER, {r.values["customer_external_id"] for r in good})
        _check_references(good, "customer_external_id", found,
                          lambda _row, ref, customer: None if customer else f"unknown customer external id {ref!r}")
        return found

    def _policies(self, conn: Connection, chunk: list[Row]) -> tuple[int, int, int]:
        good = _no_new_rows_under_unfit_ids(conn, POLICY, [r for r in chunk if not r.errors])
        customers = self._resolve_customers(conn, good)
        good = [r for r in good if not r.errors and self._first_time(r)]
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
        existing = _ids(conn, POLICY, {r["external_id"] for r in rows}, *update, lock=True)
        written = _changed(rows, update, existing)
        _upsert(conn, POLICY, written, update)
        return _counts(rows, written, existing)

    def _claims(self, conn: Connection, chunk: list[Row]) -> tuple[int, int, int]:
        good = _no_new_rows_under_unfit_ids(conn, CLAIM, [r for r in chunk if not r.errors])
        customers = self._resolve_customers(conn, good)
        good = [r for r in good if not r.errors]
        wanted = {r.values["policy_external_id"] for r in good if r.values.get("policy_external_id")}
        policies = _ids(conn, POLICY, wanted, "customer_id")

        def policy_problem(row: Row, ref: str, policy: Any) -> str | None:
            if policy is None:
                return f"unknown policy external id {ref!r}"
            if policy.customer_id != customers[row.values["customer_external_id"]].id:
                return f"policy {ref!r} belongs to another customer"
            return None

        _check_references(good, "policy_external_id", policies, policy_problem)
        good = [r for r in good if not r.errors and self._first_time(r)]
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
        existing = _ids(conn, CLAIM, {r["external_id"] for r in rows}, *update, lock=True)
        written = _changed(rows, update, existing)
        _upsert(conn, CLAIM, written, update)
        return _counts(rows, written, existing)

    def _resolve_advisors(self, conn: Connection, good: list[Row]) -> dict[str, int]:
        """username → user id of each ``advisor`` the rows name; a row naming a user who cannot be a
        customer's advisor gets its reason (``_advisor_problem``)."""
        wanted = {r.values["advisor"] for r in good if r.values.get("advisor")}
        if not wanted:
            return {}
        users = {u.username: u for u in conn.execute(
            select(USER.c.id, USER.c.username, USER.c.role, USER.c.active).where(USER.c.username.in_(sorted(wanted))))}
        # A deactivated advisor may stay the advisor of the customers who already have them (an export
        # of the book imported again, a file that only corrects a name), never become a new one's.
        inactive = {u.id for u in users.values() if not u.active}
        asked = {r.values["external_id"] for r in good
                 if r.values.get("advisor") in users and users[r.values["advisor"]].id in inactive}
        stored = {external_id: row.advisor_id for external_id, row in _ids(conn, CUSTOMER, asked, "advisor_id").items()}

        def problem(row: Row, name: str, user: Any) -> str | None:
            if user is not None and not user.active and stored.get(row.values["external_id"]) == user.id:
                return None
            return _advisor_problem(row, name, user)

        _check_references(good, "advisor", users, problem)
        return {name: user.id for name, user in users.items()}

    def _customers(self, conn: Connection, chunk: list[Row]) -> tuple[int, int, int]:
        good = _no_new_rows_under_unfit_ids(conn, CUSTOMER, [r for r in chunk if not r.errors])
        advisors = self._resolve_advisors(conn, good) if "advisor" in self.present else {}
        good = [r for r in good if not r.errors and self._first_time(r)]
        # Every column: what the file would write is compared with what is stored (``_changed``).
        existing = _ids(conn, CUSTOMER, {r.values["external_id"] for r in good},
                        *(c.name for c in CUSTOMER.columns if c.name not in ("id", "external_id")), lock=True)
        present, now = self.present, self.now
        attr_columns = self.attribute_columns
        rows: list[dict[str, Any]] = []
        update: list[str] = []
        tier_moves: list[tuple[str, str | None, str, float]] = []
        for row in good:
            v, old = row.values, existing.get(row.values["external_id"])
            if old is not None and old.anonymised_at is not None:
                # Its touches, tasks and answers are kept for the figures: a name and a phone put back
                # on the row would make them a person's history again, undoing the anonymisation.
                row.errors.append(f"customer {v['external_id']!r} is anonymised: it takes no personal data again")
                del self.seen[v["external_id"]]
                continue
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
            if "advisor" in present:
                out["advisor_id"] = advisors[v["advisor"]] if v["advisor"] else None
                cols.append("advisor_id")
            if "birthday" in present:
                birthday = v["birthday"]
                out["birthday"] = birthday
                out["birth_md"] = birthday.month * 100 + birthday.day if birthday else None
                cols += ["birthday", "birth_md"]
            if "id_number" in present:
                assert self.cipher is not None  # checked with the header
                out["id_number_enc"] = self._id_number(v["id_number"], old.id_number_enc if old is not None else None)
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
        written = _changed(rows, update, existing)
        _upsert(conn, CUSTOMER, written, update)
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
        return _counts(rows, written, existing)

    def _id_number(self, given: str | None, stored: bytes | None) -> bytes | None:
        """The ID number encrypted; the stored value itself when it already holds ``given`` under the key in
        force (encrypting draws a new nonce, so the same number would read as a change at every import)."""
        if not given:
            return None
        assert self.cipher is not None  # checked with the header
        if stored is not None and blob_key_id(stored) == self.cipher.key_id:
            try:
                if self.cipher.decrypt(stored) == given:
                    return stored
            except InvalidTag:
                pass
        return self.cipher.encrypt(given)

    def _consent(
        self, given: bool | None, source: str | None, at: datetime | None,
        old: tuple[bool | None, str | None, datetime | None] | None,
    ) -> tuple[bool | None, str | None, datetime | None]:
        """Consent, its source and time. An unchanged consent keeps its recorded source and time
        (so a re-import does not move them); a new or changed one is stamped now by "import"
        unless the file says where and when it was given. ``given`` None is a marketing consent
        not given apart (``fields.marketing_consent``). A consent the customer withdrew by an opt-out
        is kept withdrawn unless the file gives a later consent time (``store.consent``)."""
        if old is not None and keeps_opt_out(*old, given, at):
            return old
        if old is not None and old[0] == given:
            return given, source or old[1], at or old[2]
        if given or old is not None:
            return given, source or "import", at or self.now
        return given, source, at
