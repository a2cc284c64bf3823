"""The plan writer: one chunk's output turned into rows and written, idempotently, in one commit.

Touches, tasks and new enrollments go in with bulk ``INSERT … ON CONFLICT DO NOTHING`` on
their idempotency keys (touch and task key ``customer:journey:step:occurrence``; enrollment
unique on customer, journey and occurrence), so a re-run, or two planners at once, creates
nothing twice. Waiting enrollments advance with a guarded UPDATE that only the planner still
seeing the row waiting at the same time carries out. Touches dropped by a delivery rule are
stored too, with status ``dropped`` and the reason in ``error_reason``, so that explain can
show them and a re-run does not reconsider them. Stored touches the cap decided again (one
pre-empted by a touch of higher priority that arrived later, or let back in) change status
with an UPDATE guarded on the status they had; when one changed meanwhile (dispatch took
it), nothing of the chunk is written and ``StaleTouches`` says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, bindparam, update
from sqlalchemy.engine import Dialect
from sqlmodel import Session

from engine.planning.facts import DROPPED
from engine.planning.plan_output import ChunkOutput, PlanResult
from store.clock import as_utc, utcnow
from store.models import AgentTask, Customer, Enrollment, Event, TaskStatus, Touch, TouchStatus

ENROLLMENT_COLUMNS = ("customer_id", "journey_id", "journey_version", "occurrence", "step_id", "state", "next_at",
                      "split_branch", "entered_at", "exited_at", "exit_reason", "entry_rule", "step_started_at",
                      "scope_event_id", "event_id")
TOUCH_COLUMNS = ("key", "customer_id", "journey_id", "journey_version", "step_id", "occurrence", "category",
                 "urgent", "channel", "fallback_channels", "template", "split_branch", "entry_rule", "planned_for",
                 "due_at", "status", "error_reason", "attempts", "created_at")
TASK_COLUMNS = ("key", "customer_id", "journey_id", "journey_version", "step_id", "occurrence", "queue", "priority",
                "script", "assignee_id", "status", "due_at", "created_at", "attempt", "escalated", "event_id",
                "warn_at")


class StaleTouches(RuntimeError):
    """A stored touch the cap decided again was taken (or changed) by someone else meanwhile."""


@dataclass(frozen=True)
class _Batch:
    """One prepared insert: SQL text and driver-ready rows (SQLite), or, on PostgreSQL, the
    target table, column and conflict names and driver-ready rows for :func:`_copy_insert`."""

    statement: Any
    rows: list[Any]
    names: Sequence[str] = ()
    conflict: Sequence[str] = ()


def write_chunk(session: Session, out: ChunkOutput, result: PlanResult,
                write_lock: AbstractContextManager[Any]) -> None:
    """Write one chunk's output and commit, counting what was written in ``result``.

    ``write_lock`` is held only while the database works: the rows are converted before it
    is taken."""
    now = utcnow()
    dialect = session.get_bind().dialect
    enrollments = _batch(dialect, Enrollment, ENROLLMENT_COLUMNS, [
        (e.customer_id, e.journey_id, e.journey_version, e.occurrence, e.step_id, e.state, e.next_at,
         e.split_branch, e.entered_at, e.exited_at, e.exit_reason, e.entry_rule, e.step_started_at, e.scope_event_id,
         e.event_id)
        for e in out.enrollments if e.existing_id is None], ["customer_id", "journey_id", "occurrence"])
    advanced = [{
        "eid": e.existing_id, "old_next": e.previous_next_at, "new_step": e.step_id, "new_state": e.state,
        "new_next": e.next_at, "new_split": e.split_branch, "new_exited": e.exited_at,
        "new_reason": e.exit_reason, "new_started": e.step_started_at, "new_event": e.scope_event_id}
        for e in out.enrollments if e.existing_id is not None]
    changes = [{"k": c.key, "old_status": c.old_status, "new_status": c.status, "new_reason": c.reason}
               for c in out.changes]
    planned: list[tuple[Any, ...]] = []
    dropped: list[tuple[Any, ...]] = []
    for d in out.decisions:
        w = d.wanted
        row = (w.key, w.customer_id, w.journey_id, w.journey_version, w.step_id, w.occurrence, w.category,
               w.urgent, d.channel, d.fallback_channels, w.template, w.split_branch, w.entry_rule,
               w.planned_for, d.due_at)
        if d.planned:
            planned.append((*row, TouchStatus.PLANNED, None, 0, now))
        else:
            dropped.append((*row, DROPPED, f"{d.dropped_by}: {d.reason}"[:255], 0, now))
    touches = _batch(dialect, Touch, TOUCH_COLUMNS, planned, ["key"])
    dropped_touches = _batch(dialect, Touch, TOUCH_COLUMNS, dropped, ["key"])
    # A task is created when its step was due, not when a run got to it: a run catching up after the
    # service was down writes Friday's task on Monday, and the report's "task created → completed" and the
    # desk's age would otherwise hide the days the customer waited (its SLA runs from then already).
    tasks = _batch(dialect, AgentTask, TASK_COLUMNS, [
        (t.key, t.customer_id, t.journey_id, t.journey_version, t.step_id, t.occurrence, t.queue, t.priority,
         t.script, t.assignee_id, TaskStatus.OPEN, t.due_at, min(as_utc(t.planned_for), now), 1, False, t.event_id,
         t.warn_at)
        for t in out.tasks], ["key"])
    counts = dict.fromkeys(("enrollments_written", "enrollments_advanced", "touches_changed", "touches_written",
                            "dropped_written", "tasks_written"), 0)
    with write_lock:
        try:
            counts["enrollments_written"] += _insert(session, enrollments)
            if advanced:
                t = Enrollment.__table__  # type: ignore[attr-defined]
                # Guarded: only the planner that still sees the row waiting at the same time advances it.
                stmt = update(t).where(
                    t.c.id == bindparam("eid"), t.c.state == "waiting", t.c.next_at == bindparam("old_next")).values(
                    step_id=bindparam("new_step"), state=bindparam("new_state"), next_at=bindparam("new_next"),
                    split_branch=bindparam("new_split"), exited_at=bindparam("new_exited"),
                    exit_reason=bindparam("new_reason"), step_started_at=bindparam("new_started"),
                    scope_event_id=bindparam("new_event"))
                session.connection().execute(stmt, advanced)
                counts["enrollments_advanced"] += len(advanced)
            if changes:
                tt = Touch.__table__  # type: ignore[attr-defined]
                # Guarded like a claim: only a touch still in the status the cap decided on changes. One
                # that dispatch took meanwhile is being sent; the chunk is planned again around it.
                stmt = update(tt).where(tt.c.key == bindparam("k"), tt.c.status == bindparam("old_status")).values(
                    status=bindparam("new_status"), error_reason=bindparam("new_reason"))
                changed = 0
                for change in changes:
                    changed += session.connection().execute(stmt, change).rowcount
                if changed != len(changes):
                    raise StaleTouches(f"{len(changes) - changed} of {len(changes)} touches changed status meanwhile")
                counts["touches_changed"] += changed
            counts["touches_written"] += _insert(session, touches)
            counts["dropped_written"] += _insert(session, dropped_touches)
            counts["tasks_written"] += _insert(session, tasks)
            if out.updates:
                ct = Customer.__table__  # type: ignore[attr-defined]
                session.connection().execute(
                    update(ct).where(ct.c.id == bindparam("cid")).values(attributes=bindparam("attrs"), updated_at=now),
                    [{"cid": cid, "attrs": attrs} for cid, attrs in out.updates.items()])
            if out.events:
                et = Event.__table__  # type: ignore[attr-defined]
                session.connection().execute(update(et).where(et.c.id.in_(out.events), et.c.processed_at.is_(None))
                                       .values(processed_at=now))
            session.commit()
        except BaseException:
            # Nothing of a chunk that failed halfway stays in the session: the rows an
            # executemany wrote before the failing one would be committed by the next chunk.
            session.rollback()
            raise
    # Counted once committed: a chunk written again after StaleTouches counts once.
    for name, n in counts.items():
        setattr(result, name, getattr(result, name) + n)


def _batch(dialect: Dialect, model: Any, names: Sequence[str], rows: list[tuple[Any, ...]],
           conflict: list[str]) -> _Batch:
    """An insert of ``rows`` (values in the order of ``names``) that skips those whose
    ``conflict`` key exists, with every value already in the form the driver takes: all
    the Python work of a write is done before it takes the database's write lock."""
    table = model.__table__
    if not rows:
        return _Batch("", [])
    # SQLAlchemy's insertmanyvalues path costs more per row (parameter construction, type
    # processing of every cell, RETURNING) than the database does to store it, so the column
    # values are converted once here with the columns' own bind processors (same stored form)
    # and handed to the driver.
    columns = [_processed(table.c[name], values, dialect) for name, values in
               zip(names, zip(*rows, strict=True), strict=True)]
    if dialect.name != "sqlite":
        return _Batch(table, list(zip(*columns, strict=True)), names, conflict)
    # SQLite: the driver's executemany. Its rowcount counts only the rows inserted: a
    # conflict skipped by DO NOTHING changes nothing. A column empty in every row is left out
    # (it is stored NULL all the same): each value bound costs the driver and SQLite a call and
    # a lock of the connection's mutex, and most chunks leave several columns empty (an event's
    # id outside event entries, a split branch outside splits, a task's assignee).
    names, columns = _without_empty(table, names, columns)
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "  # nosec B608 # names from the model metadata, quoted by the dialect; values bound
           f"VALUES ({', '.join('?' for _ in names)}) "
           f"ON CONFLICT ({', '.join(quote(n) for n in conflict)}) DO NOTHING")
    return _Batch(sql, list(zip(*columns, strict=True)))


def _insert(session: Session, batch: _Batch) -> int:
    """Run ``batch``; the number of rows actually inserted."""
    if not batch.rows:
        return 0
    if isinstance(batch.statement, str):
        return int(session.connection().exec_driver_sql(batch.statement, batch.rows).rowcount)
    return _copy_insert(session, batch)


def _copy_insert(session: Session, batch: _Batch) -> int:
    """PostgreSQL: COPY the rows into a session-local staging table, then one
    ``INSERT … SELECT … ON CONFLICT DO NOTHING`` into the real one; the rows inserted.

    COPY streams rows without building and parsing a statement per batch of rows: with
    SQLAlchemy's multi-row INSERTs of row dicts (insertmanyvalues, what this used to be) the
    client spent about 47 µs a row, and the bench's 100k-customer day took 55-60 s of CPU
    against 15-20 s now (benchmarks/README.md). The conflict clause needs a real INSERT,
    hence the staging table: temporary, so each connection has its own and no other session
    sees it, with only the columns written (no id, so no sequence values are taken), and
    emptied at commit. A chunk that fails rolls back its staging rows with the rest."""
    table = batch.statement
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    cols = ", ".join(quote(n) for n in batch.names)
    staging = quote(f"staging_{table.name}")
    raw: Any = session.connection().connection.driver_connection  # psycopg's own connection
    with raw.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS "  # nosec B608 # names from the model metadata, quoted by the dialect
                       f"AS SELECT {cols} FROM {quote(table.name)} WITH NO DATA")
        # A table written twice in one chunk (touches planned, then dropped) starts empty again.
        cursor.execute(f"TRUNCATE {staging}")
        with cursor.copy(f"COPY {staging} ({cols}) FROM STDIN") as copy:  # nosec B608 # as above
            for row in batch.rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO {quote(table.name)} ({cols}) SELECT {cols} FROM {staging} "  # nosec B608 # as above
                       f"ON CONFLICT ({', '.join(quote(n) for n in batch.conflict)}) DO NOTHING")
        return int(cursor.rowcount)


def _copy_text(column: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """What a value of ``column`` is turned into for COPY: JSON and datetimes as their text.

    psycopg dumps a ``Json`` wrapper through ``json.dumps`` and an aware datetime through its
    zone, for every row it copies: measured, 15 µs a touch row against 1.2 µs when those
    cells are already text, and here each distinct value is turned into text once. A
    datetime goes through its column type's own processing first (the store's UTCDateTime
    refuses a naive one), and its ISO 8601 text keeps the UTC offset, so the server stores
    the same instant."""
    if type(column.type) is JSON:
        serializer: Callable[[Any], str] = dialect._json_serializer or json.dumps  # the engine's own, if given
        return serializer
    if isinstance(column.type, DateTime) or isinstance(getattr(column.type, "impl", None), DateTime):
        bind = column.type.dialect_impl(dialect).bind_processor(dialect)

        def iso(moment: datetime | None) -> str | None:
            if bind is not None:
                moment = bind(moment)
            return None if moment is None else moment.isoformat()
        return iso
    return None


def _processed(column: Any, values: Sequence[Any], dialect: Dialect) -> Sequence[Any]:
    """``values`` of ``column`` in the form its type binds them on ``dialect`` (on PostgreSQL,
    the form COPY takes)."""
    if dialect.name == "sqlite":
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
    else:
        process = _copy_text(column, dialect) or column.type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return values
    # A chunk's values repeat (a few due times per zone, a few fallback lists), so each
    # distinct one is converted once. Hashable values (all but the lists) are gathered and
    # looked up by the interpreter's own loops rather than one Python step per row.
    try:
        converted = {v: process(v) for v in dict.fromkeys(values)}
    except TypeError:  # a list among them
        pass
    else:
        return list(map(converted.__getitem__, values))
    seen: dict[Any, Any] = {}
    out = []
    for v in values:
        key = tuple(v) if isinstance(v, list) else v  # fallback channels: a few distinct lists
        try:
            p = seen[key]
        except KeyError:
            p = seen[key] = process(v)
        except TypeError:
            p = process(v)
        out.append(p)
    return out


def _without_empty(table: Any, names: Sequence[str],
                   columns: list[Sequence[Any]]) -> tuple[list[str], list[Sequence[Any]]]:
    """``names`` and ``columns`` without the columns that are None in every row and that the
    table stores as NULL when left out (no server default)."""
    keep = [i for i, (name, values) in enumerate(zip(names, columns, strict=True))
            if values.count(None) != len(values) or table.c[name].server_default is not None]
    return [names[i] for i in keep], [columns[i] for i in keep]
