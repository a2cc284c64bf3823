"""``journeys keys rotate``: re-encrypt every encrypted field from the current key to a new one.

How a rotation goes (SPEC §9, keys are admin business):

1. generate a key (``journeys keys generate``) and put it in an environment variable,
   e.g. ``JOURNEYS_DATA_NEW_KEY``;
2. run ``journeys keys rotate --new-key-env JOURNEYS_DATA_NEW_KEY`` with the current key
   in ``JOURNEYS_DATA_KEY`` (and any older ones still in ``JOURNEYS_DATA_PREVIOUS_KEYS``);
3. make the new key ``JOURNEYS_DATA_KEY`` and keep the old one in
   ``JOURNEYS_DATA_PREVIOUS_KEYS`` until ``journeys keys status`` shows nothing under it.

Every value carries the id of the key that wrote it (``store.crypto``), so while a
rotation runs, readers that know both keys read old and new values alike. The work is
done in batches, in id order, one transaction per batch; the batch's position is saved
in the ``kv`` table in the same transaction, so an interrupted rotation (killed, crashed,
``--max-batches``) resumes where it stopped and never re-encrypts a value twice for
nothing. A value is replaced only if it is still the one that was read (compare-and-set),
so a writer changing it meanwhile wins. Because writers that still use the old key may
write behind the cursor, a rotation that reaches the end checks every value once more
from the start before it calls itself complete.

A value no configured key can decrypt is left as it is and reported (id and key id):
rotation never destroys data it cannot read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from store.clock import utcnow
from store.crypto import DataKeyError, FieldCipher, blob_key_id, key_id, load_key, load_previous_keys
from store.db import make_engine
from store.field_values import field_values

DEFAULT_BATCH = 500
# A rotation that keeps finding values written under the old key behind it (a writer still
# configured with the old key) stops after this many full checks and says so.
MAX_VERIFY_PASSES = 3


@dataclass(frozen=True)
class EncryptedField:
    """A column holding ``store.crypto`` values; ``context`` is the field's associated data."""

    table: str
    column: str
    context: bytes
    id_column: str = "id"

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


# Every encrypted column of the store. A new encrypted field is added here, and rotation covers it.
ENCRYPTED_FIELDS: tuple[EncryptedField, ...] = (
    EncryptedField("customer", "id_number_enc", b"customer.id_number"),
)


class RotationError(RuntimeError):
    """The rotation cannot start (no keys, same key, no schema)."""


@dataclass
class RotationReport:
    new_key_id: str
    rotated: int = 0  # values re-encrypted by this run
    already: int = 0  # values found already under the new key (first pass)
    changed_meanwhile: int = 0  # values another writer replaced between read and write
    undecryptable: list[tuple[str, int, str]] = field(default_factory=list)  # (field, row id, key id)
    batches: int = 0
    resumed_from: dict[str, int] = field(default_factory=dict)  # field → row id the run started after
    complete: bool = False

    def as_dict(self) -> dict[str, Any]:
        # The undecryptable values themselves stay out of the report: only how many there are.
        return {**field_values(self), "undecryptable": len(self.undecryptable)}


def _table(name: str) -> Table:
    import store.models  # noqa: F401 - registers the tables on SQLModel.metadata

    return SQLModel.metadata.tables[name]


def _checkpoint_key(new_kid: bytes) -> str:
    return f"key_rotation:{new_kid.hex()}"


def _read_checkpoint(conn: Connection, new_kid: bytes) -> dict[str, Any]:
    kv = _table("kv")
    row = conn.execute(select(kv.c.value).where(kv.c.key == _checkpoint_key(new_kid))).first()
    return dict(row[0]) if row is not None and row[0] else {}


def _write_checkpoint(conn: Connection, new_kid: bytes, value: dict[str, Any]) -> None:
    kv = _table("kv")
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(kv).values(key=_checkpoint_key(new_kid), value=value, updated_at=utcnow())
    excluded = stmt.excluded
    conn.execute(stmt.on_conflict_do_update(index_elements=[kv.c.key],
                                            set_={"value": excluded.value, "updated_at": excluded.updated_at}))


def current_keys() -> list[bytes]:
    """The keys this process may decrypt with: ``JOURNEYS_DATA_KEY`` first, then the previous ones."""
    return [load_key(), *load_previous_keys()]


def rotate_keys(
    url: str,
    new_key: bytes,
    *,
    old_keys: list[bytes] | None = None,
    batch_size: int = DEFAULT_BATCH,
    max_batches: int | None = None,
    fields: tuple[EncryptedField, ...] = ENCRYPTED_FIELDS,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    """Re-encrypt every value of ``fields`` under ``new_key``; see the module doc.

    ``old_keys`` default to the configured keys (``current_keys``). ``max_batches`` stops
    after that many batches (the next run resumes); ``progress`` gets the rows handled per batch.
    """
    if batch_size < 1:
        raise RotationError("batch size must be at least 1")
    try:
        olds = old_keys if old_keys is not None else current_keys()
    except DataKeyError as exc:
        raise RotationError(f"the current key is needed to read the values: {exc}") from None
    new_kid = key_id(new_key)
    readable = [k for k in olds if key_id(k) != new_kid]
    if not readable:
        raise RotationError("the new key is the key already in use: generate a new one (journeys keys generate)")
    report = RotationReport(new_key_id=new_kid.hex())
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not engine.dialect.has_table(conn, "kv"):
                raise RotationError("the database has no schema yet: run `journeys db upgrade` first")
            checkpoint = _read_checkpoint(conn, new_kid)
        ciphers = {
            # The reader knows the new key too: a value already rotated is skipped by its id, but a
            # legacy value (no id) written under the new key must still be readable.
            f.name: (FieldCipher(new_key, f.context, previous_keys=readable), FieldCipher(new_key, f.context))
            for f in fields
        }
        cursors: dict[str, int] = {f.name: int(checkpoint.get("cursors", {}).get(f.name, 0)) for f in fields}
        report.resumed_from = {k: v for k, v in cursors.items() if v}
        verify_passes = int(checkpoint.get("verify_passes", 0))
        budget = [max_batches]
        while True:
            touched = _pass(engine, new_kid, fields, ciphers, cursors, verify_passes, batch_size, budget, report,
                            progress)
            if touched is None:  # stopped by max_batches; the checkpoint says where
                return report
            if verify_passes > 0 and touched == 0:
                break  # a full check from the start found nothing left under an old key
            verify_passes += 1
            if verify_passes > MAX_VERIFY_PASSES:
                break
            cursors = {f.name: 0 for f in fields}
            with engine.begin() as conn:
                _write_checkpoint(conn, new_kid, {"cursors": cursors, "verify_passes": verify_passes})
        report.complete = touched == 0 and not report.undecryptable
        with engine.begin() as conn:
            _write_checkpoint(conn, new_kid, {"cursors": {}, "verify_passes": 0, "finished_at": utcnow().isoformat(),
                                              "complete": report.complete})
        return report
    finally:
        engine.dispose()


def _pass(
    engine: Engine,
    new_kid: bytes,
    fields: tuple[EncryptedField, ...],
    ciphers: dict[str, tuple[FieldCipher, FieldCipher]],
    cursors: dict[str, int],
    verify_passes: int,
    batch_size: int,
    budget: list[int | None],
    report: RotationReport,
    progress: Callable[[int], None] | None,
) -> int | None:
    """One pass over every field from its cursor to the end: how many values it re-encrypted,
    or None when the batch budget ran out first."""
    touched = 0
    for f in fields:
        table = _table(f.table)
        id_col, value_col = table.c[f.id_column], table.c[f.column]
        reader, writer = ciphers[f.name]
        while True:
            if budget[0] is not None:
                if budget[0] <= 0:
                    return None
                budget[0] -= 1
            with engine.begin() as conn:
                rows = conn.execute(
                    select(id_col, value_col)
                    .where(id_col > cursors[f.name], value_col.is_not(None))
                    .order_by(id_col)
                    .limit(batch_size)
                ).all()
                if not rows:
                    break
                for row_id, blob in rows:
                    blob = bytes(blob)
                    kid = blob_key_id(blob)
                    if kid == new_kid:
                        if verify_passes == 0:  # the checking passes see the same values again
                            report.already += 1
                        continue
                    try:
                        plain = reader.decrypt(blob)
                    except Exception:  # InvalidTag: a value under a key we do not hold; keep it, report it
                        entry = (f.name, int(row_id), kid.hex() if kid else "legacy")
                        if entry not in report.undecryptable:  # the checking passes meet it again
                            report.undecryptable.append(entry)
                        continue
                    fresh = writer.encrypt(plain)
                    changed = conn.execute(
                        update(table).where(id_col == row_id, value_col == blob).values({f.column: fresh})
                    ).rowcount
                    if changed:
                        report.rotated += 1
                        touched += 1
                    else:
                        report.changed_meanwhile += 1
                cursors[f.name] = int(rows[-1][0])
                _write_checkpoint(conn, new_kid, {"cursors": dict(cursors), "verify_passes": verify_passes})
            report.batches += 1
            if progress is not None:
                progress(len(rows))
    return touched


def key_census(url: str, keys: list[bytes] | None = None,
               fields: tuple[EncryptedField, ...] = ENCRYPTED_FIELDS) -> dict[str, Counter[str]]:
    """Per field: how many values each key id wrote (``legacy`` for values without an id).

    Key ids of ``keys`` (default: the configured ones) are marked ``(current)`` and ``(previous)``
    so an admin can see when an old key is no longer needed.
    """
    names: dict[bytes, str] = {}
    try:
        configured = keys if keys is not None else current_keys()
    except DataKeyError:
        configured = []
    for i, k in enumerate(configured):
        names.setdefault(key_id(k), f"{key_id(k).hex()} ({'current' if i == 0 else 'previous'})")
    engine = make_engine(url)
    result: dict[str, Counter[str]] = {}
    try:
        with engine.connect() as conn:
            for f in fields:
                table = _table(f.table)
                counts: Counter[str] = Counter()
                last = 0
                while True:
                    rows = conn.execute(
                        select(table.c[f.id_column], table.c[f.column])
                        .where(table.c[f.id_column] > last, table.c[f.column].is_not(None))
                        .order_by(table.c[f.id_column]).limit(5000)
                    ).all()
                    if not rows:
                        break
                    for _, blob in rows:
                        kid = blob_key_id(bytes(blob))
                        counts["legacy" if kid is None else names.get(kid, kid.hex())] += 1
                    last = int(rows[-1][0])
                result[f.name] = counts
    finally:
        engine.dispose()
    return result
