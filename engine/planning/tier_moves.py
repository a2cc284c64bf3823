"""Entries planned ahead under a tier the customer no longer has.

``journeys run`` judges scheduled and dated entries through the end of every customer's next local day
(``engine.planning.lookahead``), tiers included: the audience's ``tiers`` are not a fact events change. The
weekly retier (Monday 03:00) changes them all the same, hours before the entries it planned on Sunday for
Monday 10:00 (the silver weekly push): a customer retiered out of silver was sent the silver push, and one
retiered into silver never entered it, though at 10:00 the file says the other way round.

So the retier takes back, for each customer whose tier it changed, the enrollments entered after its moment
(entered ahead under the old tier, nothing of them tried yet): their untried touches withdrawn
(``engine.language.journey_edits.withdraw``, keys freed) and the enrollments deleted. It leaves a mark
(KeyValue ``tiers_changed:<moment>``); the next plan run, written or dry, judges the entries of every
journey planned ahead again from the earliest mark (``ChunkPlanner.entries_again``), with the tiers as they
are now. Customers already entered keep their enrollment (the store's key admits one per occurrence), so
only the customers taken back, or now in an audience they were not in, enter. The written run of the whole
book forgets the marks it read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlmodel import Session
from sqlmodel.sql.sqltypes import UTCDateTime

from engine.language.journey_edits import withdraw
from store.clock import as_utc
from store.models import KeyValue, TouchStatus

MARK_PREFIX = "tiers_changed:"


def tier_changed_reason() -> str:
    return "customer's tier changed: entry judged again under the new tier"


def take_back_entries(conn: Connection, customer_ids: Sequence[int], at: datetime) -> None:
    """For ``customer_ids``, whose tier changed at ``at``: withdraw the entries judged ahead under the old
    tier and mark the moment for the next plan run. Commits nothing (the retier's chunk does)."""
    if not customer_ids:
        return
    moment = bindparam("at", type_=UTCDateTime())
    ids: Any = bindparam("ids", expanding=True)
    for status in (TouchStatus.PLANNED, TouchStatus.DROPPED):
        # Dropped ones too: the cap decided them in a contest the new tier may not hold.
        found = conn.execute(
            text("SELECT t.id FROM touch t JOIN enrollment e ON e.customer_id = t.customer_id "
                 "AND e.journey_id = t.journey_id AND e.occurrence = t.occurrence "
                 "WHERE e.customer_id IN :ids AND e.entered_at > :at AND t.status = :status AND t.attempts = 0")
            .bindparams(ids, moment),
            {"ids": list(customer_ids), "at": at, "status": status}).all()
        withdraw(conn, [r.id for r in found], status, tier_changed_reason())
    # An enrollment with anything left but withdrawn touches (a touch tried, a task) did begin: it stays.
    conn.execute(
        text("DELETE FROM enrollment WHERE customer_id IN :ids AND entered_at > :at "
             "AND NOT EXISTS (SELECT 1 FROM touch t WHERE t.customer_id = enrollment.customer_id "
             "AND t.journey_id = enrollment.journey_id AND t.occurrence = enrollment.occurrence "
             "AND t.key NOT LIKE '%~%') "
             "AND NOT EXISTS (SELECT 1 FROM agent_task a WHERE a.customer_id = enrollment.customer_id "
             "AND a.journey_id = enrollment.journey_id AND a.occurrence = enrollment.occurrence)")
        .bindparams(ids, moment),
        {"ids": list(customer_ids), "at": at})
    key = MARK_PREFIX + as_utc(at).isoformat()
    kv = KeyValue.__table__  # type: ignore[attr-defined]
    if conn.execute(kv.select().with_only_columns(kv.c.key).where(kv.c.key == key)).first() is None:
        conn.execute(kv.insert().values(key=key, value={"since": as_utc(at).isoformat()}, updated_at=as_utc(at)))


def marks(session: Session) -> dict[str, datetime]:
    """The marks left by retiers since the last written run of the whole book: key → the tier change's moment."""
    kv = KeyValue.__table__  # type: ignore[attr-defined]
    rows = session.execute(kv.select().with_only_columns(kv.c.key, kv.c.value)
                           .where(kv.c.key.like(MARK_PREFIX + "%"))).all()
    return {key: as_utc(datetime.fromisoformat(value["since"])) for key, value in rows}


def entries_again(journey_ids: Iterable[str], found: dict[str, datetime],
                  edits: dict[str, datetime]) -> dict[str, datetime]:
    """``edits`` (journey id → the moment its entries are judged again after an edit) with every journey's
    entries judged again from the earliest mark in ``found`` as well."""
    if not found:
        return edits
    since = min(found.values())
    return {j: min(edits.get(j, since), since) for j in journey_ids}


def forget(session: Session, keys: Iterable[str]) -> None:
    """Delete the marks ``keys`` once the run that judged their entries again is written. Commits nothing."""
    kv = KeyValue.__table__  # type: ignore[attr-defined]
    wanted = sorted(keys)
    if wanted:
        session.execute(kv.delete().where(kv.c.key.in_(wanted)))
