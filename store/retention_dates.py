"""What the retention purge (``store.retention``) makes of the times of a customer's birthday greetings.

A birthday journey fires on the birthday (``birthday-<year>`` is its occurrence), so every time of its
rows is the birthday again: the touch's ``planned_for`` and ``due_at``, when it was sent and delivered,
the task's due time, when the enrollment entered and when a receipt or reply came back. With the
birthday cleared from the customer row, those would still tell it to the day.

Each birthday occurrence of a purged customer (her enrollment, touches and tasks of one journey and
year, the outcomes of those touches and tasks, her replies and survey answers to those touches) is
moved back by the same whole number of days, so that the day the greeting was planned for becomes
1 January of its year: the year stays (it is in the occurrence anyway), the times keep their order
and the spans between them (trigger to first touch, task to done, SLA met or not), and nothing tells
the day or the month. A figure of a period shorter
than a year counts these rows in January; that is what anonymising the date costs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, or_, select, update
from sqlalchemy.engine import Connection

from store.models import AgentTask, Enrollment, Event, Outcome, SurveyAnswer, Touch

BIRTHDAY_OCCURRENCE = re.compile(r"birthday-\d{4}")
# A date a touch's reason quotes (an expired touch's due time, the quiet hours' "moved from" time).
_DATE_IN_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?")
DATE_REMOVED = "[date removed]"


def _t(model: Any) -> Any:
    return model.__table__


def _times(table: Any) -> list[Any]:
    """Every date-time column of ``table``, found from the table itself (one added later moves too)."""
    # The models' UTC type wraps DateTime (a TypeDecorator), so its implementation is what tells.
    return [c for c in table.columns if isinstance(getattr(c.type, "impl", c.type), DateTime)]


def generalise_birthday_times(conn: Connection, ids: Sequence[int]) -> None:
    """Move the times of customers ``ids``'s birthday occurrences back to 1 January; see the module doc."""
    enrollment, touch, task, outcome = _t(Enrollment), _t(Touch), _t(AgentTask), _t(Outcome)
    found: dict[Any, list[Any]] = {}
    shift: dict[tuple[int, str, str], timedelta] = {}
    anchors: dict[tuple[int, str, str], date] = {}
    # The planned day of a greeting: its touches' planned_for, else its tasks' or the enrollment's times.
    for table, anchor in ((touch, "planned_for"), (task, "due_at"), (enrollment, "entered_at")):
        rows = conn.execute(select(table.c.id, table.c.customer_id, table.c.journey_id, table.c.occurrence,
                                   *_times(table))
                            .where(table.c.customer_id.in_(ids), table.c.occurrence.like("birthday-%"))
                            .order_by(table.c.id)).mappings().all()
        found[table] = [r for r in rows if BIRTHDAY_OCCURRENCE.fullmatch(r["occurrence"])]
        for r in found[table]:
            name = (r["customer_id"], r["journey_id"], r["occurrence"])
            if r[anchor] is not None and (name not in anchors or r[anchor].date() < anchors[name]):
                anchors[name] = r[anchor].date()
    for name, day in anchors.items():
        shift[name] = day - date(day.year, 1, 1)
    moved: dict[Any, timedelta] = {}
    for table in (touch, task, enrollment):
        changed = []
        for r in found[table]:
            delta = shift.get((r["customer_id"], r["journey_id"], r["occurrence"]))
            if not delta:
                continue
            if table is not enrollment:
                moved[(table.name, r["id"])] = delta
            changed.append({"row_id": r["id"], **{f"new_{c.name}": _back(r[c.name], delta) for c in _times(table)}})
        _write(conn, table, changed)
    _remove_dates_from_reasons(conn, [i for (kind, i) in moved if kind == touch.name])
    if not moved:
        return
    touches = [i for (kind, i) in moved if kind == touch.name]
    tasks = [i for (kind, i) in moved if kind == task.name]
    rows = conn.execute(select(outcome.c.id, outcome.c.touch_id, outcome.c.task_id, *_times(outcome))
                        .where(or_(outcome.c.touch_id.in_(touches), outcome.c.task_id.in_(tasks)))).mappings().all()
    changed = []
    for r in rows:
        delta = moved.get((touch.name, r["touch_id"])) or moved.get((task.name, r["task_id"]))
        if delta:
            changed.append({"row_id": r["id"], **{f"new_{c.name}": _back(r[c.name], delta) for c in _times(outcome)}})
    _write(conn, outcome, changed)
    _move_answers(conn, ids, {i: d for (kind, i), d in moved.items() if kind == touch.name})


def _move_answers(conn: Connection, ids: Sequence[int], moved: dict[int, timedelta]) -> None:
    """Her events that answer a moved touch (a reply names it in ``data.touch_id``) and her survey answers
    to one: she thanked us for the greeting on her birthday."""
    event, survey = _t(Event), _t(SurveyAnswer)
    if not moved:
        return
    changed = []
    for r in conn.execute(select(event.c.id, event.c.data, *_times(event))
                          .where(event.c.customer_id.in_(ids))).mappings():
        data = r["data"]
        touch_id = data.get("touch_id") if isinstance(data, dict) else None
        delta = moved.get(touch_id) if isinstance(touch_id, int) else None
        if delta:
            changed.append({"row_id": r["id"], **{f"new_{c.name}": _back(r[c.name], delta) for c in _times(event)}})
    _write(conn, event, changed)
    changed = []
    for r in conn.execute(select(survey.c.id, survey.c.touch_id, *_times(survey))
                          .where(survey.c.touch_id.in_(list(moved)))).mappings():
        changed.append({"row_id": r["id"], **{f"new_{c.name}": _back(r[c.name], moved[r["touch_id"]])
                                              for c in _times(survey)}})
    _write(conn, survey, changed)


def _remove_dates_from_reasons(conn: Connection, touch_ids: list[int]) -> None:
    touch = _t(Touch)
    if not touch_ids:
        return
    changed = [{"row_id": row_id, "new_reason": _DATE_IN_TEXT.sub(DATE_REMOVED, reason)}
               for row_id, reason in conn.execute(select(touch.c.id, touch.c.error_reason).where(
                   touch.c.id.in_(touch_ids), touch.c.error_reason.is_not(None)))
               if _DATE_IN_TEXT.search(reason)]
    if changed:
        conn.execute(update(touch).where(touch.c.id == bindparam("row_id"))
                     .values(error_reason=bindparam("new_reason", type_=touch.c.error_reason.type)), changed)


def _back(value: datetime | None, delta: timedelta) -> datetime | None:
    return None if value is None else value - delta


def _write(conn: Connection, table: Any, changed: list[dict[str, Any]]) -> None:
    """One executemany per table; a batch's rows all carry every time column of it."""
    if not changed:
        return
    values = {c.name: bindparam(f"new_{c.name}", type_=c.type) for c in _times(table)}
    conn.execute(update(table).where(table.c.id == bindparam("row_id")).values(values), changed)

