"""Customers, policies and claims that arrive after the ticks have planned their window ahead.

``journeys run`` judges scheduled and dated entries through the end of every customer's next local day
(``engine.planning.lookahead``), and each run after that judges only the window after the last one's end.
A customer imported (or PUT through the API) on Sunday at 15:00 was therefore never judged for Monday
10:00's weekly push, which Sunday's earlier ticks had judged for the book as it was; a policy added with
its renewal reminder due tomorrow was missed the same way. What the files say at 10:00 is that the
customer gets it.

Each written run of the whole book keeps the newest customer, policy and claim ids it has seen
(KeyValue ``SEEN_KEY``; ids only grow). The next run takes the customers of every row past them, the
arrivals, and judges their entries again from where the last run stood (its ``now``), as a run that
plans nothing ahead would have: each such customer enters what the book's earlier ticks would have
entered them in. Entries already made stay one per occurrence (the store's key). Finding them is one
index probe per table, so a tick with no arrival costs nothing more.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy import select as _sa_select
from sqlmodel import Session, col

from store.clock import utcnow
from store.models import Claim, Customer, KeyValue, Policy

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed select()
# overloads reject; the queries here select plain columns.
select: Any = _sa_select
SEEN_KEY = "planner.seen_ids"
# Each table's rows, and the customer each belongs to.
_TABLES: dict[str, tuple[Any, Any]] = {
    "customer": (Customer.id, Customer.id),
    "policy": (Policy.id, Policy.customer_id),
    "claim": (Claim.id, Claim.customer_id),
}


def newest(session: Session) -> dict[str, int]:
    """The newest id of each table now (0 for an empty one): one index probe each."""
    return {name: session.execute(select(func.max(row_id))).scalar() or 0 for name, (row_id, _) in _TABLES.items()}


def seen(session: Session) -> dict[str, int] | None:
    """The newest ids the last written run of the whole book had seen; None before the first."""
    row = session.get(KeyValue, SEEN_KEY)
    return None if row is None else {name: int(row.value.get(name, 0)) for name in _TABLES}


def arrivals(session: Session, before: dict[str, int] | None, now: dict[str, int]) -> list[int]:
    """The customers with a customer, policy or claim row past ``before`` up to ``now``, sorted."""
    if before is None:
        return []
    found: set[int] = set()
    for name, (row_id, customer_id) in _TABLES.items():
        if now[name] > before.get(name, 0):
            found.update(cid for (cid,) in session.execute(
                select(customer_id).distinct().where(col(row_id) > before.get(name, 0), col(row_id) <= now[name])))
    return sorted(found)


def remember(session: Session, ids: dict[str, int]) -> None:
    """Keep ``ids`` as seen (ids only grow: never moved back). Commits nothing."""
    row = session.get(KeyValue, SEEN_KEY)
    if row is None:
        session.add(KeyValue(key=SEEN_KEY, value=dict(ids), updated_at=utcnow()))
        return
    kept = {name: max(int(row.value.get(name, 0)), ids[name]) for name in _TABLES}
    if kept != row.value:
        row.value, row.updated_at = kept, utcnow()

