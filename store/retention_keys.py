"""What the retention purge (``store.retention``) makes of the keys a customer's journeys were planned,
sent and answered by.

An occurrence names what a journey fired for, and a touch's or task's key is made of the customer id,
journey, step and occurrence (``customer:journey:step:occurrence``). The planner's own forms name
nothing of the person and stay, so a key made of one still meets a later plan of the same occurrence
("sent at most once"): a schedule's local time (``2026-11-22T10:00``), a birthday's year
(``birthday-2026``), the tier review's day (``gold:2026-11-22``), and one of her own rows by our id
(``event-<id>``, ``claim-<id>``, ``policy-<id>-…``), checked to be hers. Any other occurrence may be
text from elsewhere: an attribute's date (``attribute-visit_day-2027-01-14``, the attribute the purge
clears), the CRM's event id that event-entry enrollments were named by before migration 0005 (text the
CRM chooses: a claim number, a phone), whatever a later form holds; a holiday's (``mid_autumn-2026``)
is not told apart from a CRM's ``wangwei-1985`` by its shape, so it goes too. It becomes
``anonymised-<n>``, counted per customer, the same for her enrollment, touches, tasks and a webhook
outcome event of that journey and occurrence, so they still join up (the metrics join touches to
enrollments on it) and a key rebuilt on it is still one of a kind. A key that holds the occurrence
other than at its end becomes ``anonymised-<table>-<id>``.

An enrollment or task without ``event_id`` whose occurrence names one of her events gets it first, so
the figures that found the event by the occurrence still find it once the event's id is replaced.

The provider's id of each of her messages is cleared, and an outcome's ``dedup_key`` (which embeds a
touch key or a provider's message id: the provider keeps the number each message went to) becomes
``anonymised-outcome-<id>``. A repeated callback has nothing left to repeat: her touches are final
or cancelled, and a receipt that names no touch changes none.

Each table is read in one query and written in one statement (an executemany) per batch of customers.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, bindparam, cast, literal, or_, select, update
from sqlalchemy.engine import Connection

from store.models import TIERS, AgentTask, Claim, Enrollment, Event, Outcome, Policy, Touch

STAND_IN = "anonymised-{}"
# What every id the purge puts in place of one from the source system starts with: a customer's
# ``anonymised-<id>``, ``anonymised-policy-<id>``, ``anonymised-claim-<id>``, ``anonymised-event-<id>``.
STAND_IN_PREFIX = "anonymised-"


def stand_in_problem(external_id: str, column: str = "external_id") -> str | None:
    """Why a row from outside cannot be created under ``external_id``, or None. The purge renames the
    rows it anonymises to ids of this form, each unique: a customer, policy, claim or event a source
    system had already created under one (``anonymised-7``) made the purge of customer 7 fail on the
    unique id, every run after, and kept her personal data past its retention period."""
    if not external_id.startswith(STAND_IN_PREFIX):
        return None
    return (f"{column} {external_id[:40]!r} starts with {STAND_IN_PREFIX!r}, which names only the records "
            "`journeys purge` anonymised: give the source system's own id")

_OWN_FORM = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"
    r"|birthday-\d{4}"
    rf"|(?:{'|'.join(TIERS)}):\d{{4}}-\d{{2}}-\d{{2}}"
)
# One of the customer's rows by our id; the id must be hers, or the text is only shaped like ours.
_ROW_FORM = re.compile(r"(event|claim)-([1-9]\d{0,17})|policy-([1-9]\d{0,17})-(?:[a-z_]+-)?\d{4}(?:-\d{2}-\d{2})?")


def _t(model: Any) -> Any:
    return model.__table__


class _Rows:
    """The ids of each customer's events, claims and policies, and her events' source-system ids."""

    def __init__(self, conn: Connection, ids: Sequence[int]) -> None:
        self.own: dict[int, set[tuple[str, int]]] = defaultdict(set)
        self.events_by_external: dict[tuple[int, str], int] = {}
        ev = _t(Event)
        for row_id, cid, external_id in conn.execute(
                select(ev.c.id, ev.c.customer_id, ev.c.external_id).where(ev.c.customer_id.in_(ids))):
            self.own[cid].add(("event", row_id))
            self.events_by_external[(cid, external_id)] = row_id
        for kind, model in (("claim", Claim), ("policy", Policy)):
            table = _t(model)
            for row_id, cid in conn.execute(select(table.c.id, table.c.customer_id)
                                            .where(table.c.customer_id.in_(ids))):
                self.own[cid].add((kind, row_id))

    def keeps(self, customer_id: int, occurrence: str) -> bool:
        """Whether ``occurrence`` is one of the planner's own forms naming nothing of the person."""
        if _OWN_FORM.fullmatch(occurrence):
            return True
        match = _ROW_FORM.fullmatch(occurrence)
        if match is None:
            return False
        kind, row_id = (match.group(1), match.group(2)) if match.group(1) else ("policy", match.group(3))
        return (kind, int(row_id)) in self.own[customer_id]

    def event_named(self, customer_id: int, occurrence: str) -> int | None:
        """Her event an occurrence names, in the planner's form or by the source system's id."""
        match = _ROW_FORM.fullmatch(occurrence)
        if match is not None and match.group(1) == "event" and ("event", int(match.group(2))) in self.own[customer_id]:
            return int(match.group(2))
        return self.events_by_external.get((customer_id, occurrence))


def anonymise_keys(conn: Connection, ids: Sequence[int]) -> None:
    """Occurrences, keys, provider message ids and outcome keys of customers ``ids``; see the module doc.
    Runs before their events' ids are replaced (it reads them to fill ``event_id``)."""
    rows = _Rows(conn, ids)
    enrollment, touch, task = _t(Enrollment), _t(Touch), _t(AgentTask)
    read = {
        enrollment: select(enrollment.c.id, enrollment.c.customer_id, enrollment.c.journey_id,
                           enrollment.c.occurrence, enrollment.c.event_id),
        touch: select(touch.c.id, touch.c.customer_id, touch.c.journey_id, touch.c.occurrence, touch.c.key),
        task: select(task.c.id, task.c.customer_id, task.c.journey_id, task.c.occurrence, task.c.key,
                     task.c.event_id),
    }
    found = {table: conn.execute(stmt.where(table.c.customer_id.in_(ids)).order_by(table.c.id)).mappings().all()
             for table, stmt in read.items()}
    stand_ins: dict[tuple[int, str, str], str] = {}
    counted: dict[int, int] = defaultdict(int)
    for table in (enrollment, touch, task):
        for r in found[table]:
            name = (r["customer_id"], r["journey_id"], r["occurrence"])
            if name not in stand_ins and not rows.keeps(r["customer_id"], r["occurrence"]):
                counted[r["customer_id"]] += 1
                stand_ins[name] = STAND_IN.format(counted[r["customer_id"]])
    for table in (enrollment, touch, task):
        _write(conn, table, [row for r in found[table] if (row := _renamed(table, r, rows, stand_ins))])
    _rename_in_events(conn, ids, stand_ins)
    conn.execute(update(touch).where(touch.c.customer_id.in_(ids), touch.c.provider_message_id.is_not(None))
                 .values(provider_message_id=None))
    o = _t(Outcome)
    conn.execute(update(o).where(
        o.c.dedup_key.is_not(None),
        or_(o.c.customer_id.in_(ids), o.c.touch_id.in_(select(touch.c.id).where(touch.c.customer_id.in_(ids))),
            o.c.task_id.in_(select(task.c.id).where(task.c.customer_id.in_(ids)))),
    ).values(dedup_key=literal("anonymised-outcome-") + cast(o.c.id, String)))


def _renamed(table: Any, r: Any, rows: _Rows, stand_ins: dict[tuple[int, str, str], str]) -> dict[str, Any] | None:
    """The row's new values (``row_id``, ``new_occurrence``, and ``new_key`` / ``new_event_id`` where the
    table has them), or None when nothing changes."""
    cid, occurrence = r["customer_id"], r["occurrence"]
    new = stand_ins.get((cid, r["journey_id"], occurrence), occurrence)
    values: dict[str, Any] = {"row_id": r["id"], "new_occurrence": new}
    changed = new != occurrence
    if "event_id" in r:
        event_id = r["event_id"] if r["event_id"] is not None else rows.event_named(cid, occurrence)
        values["new_event_id"] = event_id
        changed = changed or event_id != r["event_id"]
    if "key" in r:
        key = r["key"]
        if new != occurrence and key.endswith(f":{occurrence}"):
            key = key[: len(key) - len(occurrence)] + new
        elif new != occurrence and occurrence in key:
            key = f"anonymised-{table.name}-{r['id']}"
        values["new_key"] = key
    return values if changed else None


def _write(conn: Connection, table: Any, changed: list[dict[str, Any]]) -> None:
    if not changed:
        return
    values = {"occurrence": bindparam("new_occurrence", type_=table.c.occurrence.type)}
    if "new_key" in changed[0]:
        values["key"] = bindparam("new_key", type_=table.c.key.type)
    if "new_event_id" in changed[0]:
        values["event_id"] = bindparam("new_event_id", type_=table.c.event_id.type)
    conn.execute(update(table).where(table.c.id == bindparam("row_id")).values(values), changed)


def _rename_in_events(conn: Connection, ids: Sequence[int], stand_ins: dict[tuple[int, str, str], str]) -> None:
    """A webhook step's outcome event names its journey and occurrence (``data.journey``,
    ``data.occurrence``): renamed as the enrollment it answers."""
    if not stand_ins:
        return
    ev = _t(Event)
    changed = []
    mine = select(ev.c.id, ev.c.customer_id, ev.c.data).where(ev.c.customer_id.in_(ids))
    for row_id, cid, data in conn.execute(mine):
        if not isinstance(data, dict):
            continue
        new = stand_ins.get((cid, str(data.get("journey")), str(data.get("occurrence"))))
        if new is not None:
            changed.append({"row_id": row_id, "new_data": {**data, "occurrence": new}})
    if changed:
        conn.execute(update(ev).where(ev.c.id == bindparam("row_id"))
                     .values(data=bindparam("new_data", type_=ev.c.data.type)), changed)
