"""Complaint timings and first-touch times join tasks and enrollments to their event: by ``event_id``
(migration 0005, which keys stored rows), else whichever way the occurrence names it, the planner's
``event-<row id>`` or the event's external id; every such lookup through an index."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlmodel import Session

from engine.loop.metric_sql import TIER_TABLE
from engine.loop.metrics import compute_metrics
from store.db import get_engine, session_scope
from store.migrate import downgrade, upgrade
from store.models import AgentTask, Customer, Enrollment, Event, Touch
from tests.closed_loop_book import END, NOW, START, build


def test_complaint_response_uses_planner_event_occurrence(db_url: str) -> None:
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    with Session(get_engine(db_url)) as session:
        customer = Customer(external_id="C1", name="张三", tier="gold", created_at=t0, updated_at=t0)
        session.add(customer)
        session.flush()
        assert customer.id is not None
        events = []
        for i in range(2):
            event = Event(external_id=f"api-{i}", type="complaint.filed", customer_id=customer.id,
                          occurred_at=t0, received_at=t0)
            session.add(event)
            session.flush()
            events.append(event)
        # Task of event 0 keyed the planner's way, done after 10 h; event 1's after 30 h by external id.
        for i, (occurrence, hours) in enumerate([(f"event-{events[0].id}", 10), ("api-1", 30)]):
            session.add(AgentTask(
                key=f"k{i}", customer_id=customer.id, journey_id="complaint-response", journey_version="v",
                step_id="call", occurrence=occurrence, queue="complaints", due_at=t0, created_at=t0,
                status="done", completed_at=t0 + timedelta(hours=hours),
                outcome_code="resolved",
            ))
        session.commit()
    report = compute_metrics(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC),
                             now=datetime(2026, 4, 1, tzinfo=UTC), url=db_url).as_dict()
    # (10 h + 30 h) / 2 complaints = 20 h; both closed by "resolved" at the same moments.
    assert report["total"]["complaint_response_hours"] == 20.0
    assert report["total"]["closure_cycle_hours"] == 20.0


def _customer_and_complaint(session: Session, t0: datetime) -> tuple[int, int]:
    customer = Customer(external_id="C1", name="张三", tier="gold", created_at=t0, updated_at=t0)
    session.add(customer)
    session.flush()
    assert customer.id is not None
    event = Event(external_id="api-9", type="complaint.filed", customer_id=customer.id, occurred_at=t0,
                  received_at=t0)
    session.add(event)
    session.flush()
    assert event.id is not None
    return customer.id, event.id


def test_metrics_join_on_event_id_whatever_the_occurrence_says(migrated_any_db: str) -> None:
    """A task and an enrollment keyed by ``event_id`` answer that event even when their occurrence
    names nothing the old text join could match."""
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    with Session(get_engine(migrated_any_db)) as session:
        customer_id, event_id = _customer_and_complaint(session, t0)
        enrollment = Enrollment(customer_id=customer_id, journey_id="complaint-response", journey_version="v",
                                occurrence="complaint-call", state="done", entered_at=t0 + timedelta(minutes=5),
                                event_id=event_id)
        session.add(enrollment)
        session.add(Touch(key="t1", customer_id=customer_id, journey_id="complaint-response", journey_version="v",
                          step_id="sms", occurrence="complaint-call", category="service", channel="sms",
                          template="t", planned_for=t0, due_at=t0, status="delivered", created_at=t0,
                          sent_at=t0 + timedelta(hours=2)))
        session.add(AgentTask(key="k1", customer_id=customer_id, journey_id="complaint-response",
                              journey_version="v", step_id="call", occurrence="complaint-call", queue="complaints",
                              due_at=t0, created_at=t0, status="done", completed_at=t0 + timedelta(hours=5),
                              outcome_code="resolved", event_id=event_id))
        session.commit()
    total = compute_metrics(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC),
                            now=datetime(2026, 4, 1, tzinfo=UTC), url=migrated_any_db).total
    assert total["complaints"] == 1
    assert total["complaint_response_hours"] == 5.0  # the task's 5 h, found by event_id
    assert total["closure_cycle_hours"] == 5.0
    assert total["first_touch_hours"] == 2.0  # from the event (01:00), not the enrollment's entry (01:05)


def test_rows_keyed_and_unkeyed_give_the_same_figures(migrated_any_db: str) -> None:
    """The fallback for rows without ``event_id`` finds what the key finds: fill it, and no figure moves."""
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    with Session(get_engine(migrated_any_db)) as session:
        customer_id, event_id = _customer_and_complaint(session, t0)
        for i, (occurrence, hours) in enumerate([(f"event-{event_id}", 7), ("api-9", 3)]):
            session.add(AgentTask(key=f"k{i}", customer_id=customer_id, journey_id="complaint-response",
                                  journey_version="v", step_id=f"call{i}", occurrence=occurrence, queue="complaints",
                                  due_at=t0, created_at=t0, status="done", completed_at=t0 + timedelta(hours=hours),
                                  outcome_code="resolved"))
        session.add(Enrollment(customer_id=customer_id, journey_id="complaint-response", journey_version="v",
                               occurrence=f"event-{event_id}", state="done", entered_at=t0 + timedelta(hours=1)))
        session.add(Touch(key="t1", customer_id=customer_id, journey_id="complaint-response", journey_version="v",
                          step_id="sms", occurrence=f"event-{event_id}", category="service", channel="sms",
                          template="t", planned_for=t0, due_at=t0, status="delivered", created_at=t0,
                          sent_at=t0 + timedelta(hours=4)))
        session.commit()

    def figures() -> dict[str, Any]:
        return compute_metrics(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC), "tier",
                               now=datetime(2026, 4, 1, tzinfo=UTC), url=migrated_any_db).as_dict()

    unkeyed = figures()
    assert unkeyed["total"]["complaint_response_hours"] == 3.0  # the earlier of the two tasks
    assert unkeyed["total"]["first_touch_hours"] == 4.0
    with get_engine(migrated_any_db).begin() as conn:
        for table in ("enrollment", "agent_task"):
            conn.execute(text(f"UPDATE {table} SET event_id = :e"), {"e": event_id})
    keyed = figures()
    assert (keyed["total"], keyed["groups"]) == (unkeyed["total"], unkeyed["groups"])


def test_migration_0005_keys_stored_rows_by_the_event_their_occurrence_names(any_db_url: str) -> None:
    upgrade(any_db_url, "0004")
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    engine = get_engine(any_db_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO customer (external_id, name, timezone, locale, branch, consent_sms, "
                          "consent_wechat, consent_email, preferred_channels, attributes, created_at, updated_at) "
                          "VALUES ('C1', 'c', 'Asia/Shanghai', 'zh-CN', '', false, false, false, '[]', '{}', :t, :t)"),
                     {"t": t0})
        customer = conn.execute(text("SELECT id FROM customer")).scalar_one()
        for external in ("api-1", "ext-2"):
            conn.execute(text("INSERT INTO event (external_id, type, customer_id, data, occurred_at, received_at) "
                              "VALUES (:x, 'complaint.filed', :c, '{}', :t, :t)"), {"x": external, "c": customer,
                                                                                      "t": t0})
        ids = dict(conn.execute(text("SELECT external_id, id FROM event")).all())
        first = ids["api-1"]
        # Occurrence → the event it names, if any: the planner's form, an external id, and text that
        # only looks like one (a leading zero, no such row, not digits, too long for any id).
        cases = {f"event-{first}": first, "ext-2": ids["ext-2"], f"event-0{first}": None, "event-99999": None,
                 "event-abc": None, "event-": None, "event-" + "9" * 30: None, "2026-W45": None}
        for n, occurrence in enumerate(cases):
            conn.execute(text("INSERT INTO enrollment (customer_id, journey_id, journey_version, occurrence, state, "
                              "entered_at) VALUES (:c, 'j', 'v', :o, 'done', :t)"),
                         {"c": customer, "o": occurrence, "t": t0})
            conn.execute(text("INSERT INTO agent_task (key, customer_id, journey_id, journey_version, step_id, "
                              "occurrence, queue, priority, status, due_at, created_at, attempt, escalated) "
                              "VALUES (:k, :c, 'j', 'v', 's', :o, 'q', 2, 'open', :t, :t, 1, false)"),
                         {"k": f"k{n}", "c": customer, "o": occurrence, "t": t0})
    upgrade(any_db_url)
    with engine.connect() as conn:
        for table in ("enrollment", "agent_task"):
            assert dict(conn.execute(text(f"SELECT occurrence, event_id FROM {table}")).all()) == cases, table


def test_report_queries_find_events_and_tasks_by_key_never_by_scanning(db_url: str) -> None:
    """No query of the report compares every row with every event or task: each lookup of an event
    or a task for a row is an index search (SQLite's query plan of every statement the report runs)."""
    with session_scope(db_url) as session:
        build(session)
    statements: list[tuple[str, Any]] = []
    engine = get_engine(db_url)

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    sa_event.listen(engine, "before_cursor_execute", keep)
    try:
        compute_metrics(START, END, "tier", now=NOW, url=db_url)
    finally:
        sa_event.remove(engine, "before_cursor_execute", keep)
    assert len(statements) >= 10
    with engine.connect() as conn:
        TIER_TABLE.create(conn)  # the report's own tiers at the start, gone with its connection
        for statement, parameters in statements:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            assert not _scans_per_row(plan), "\n".join(str(row) for row in plan) + "\n" + statement


# Columns with a handful of values: an index search on them alone reads a large share of the table.
COARSE = {"status", "kind", "type", "state", "queue", "channel"}


def _scans_per_row(plan: list[Any]) -> list[str]:
    """Table reads run once per row of something else that are not a key lookup: a full scan inside a
    correlated subquery or as the inner loop of a join, or an index search there on coarse columns
    only (``status = 'done'``). The one outer scan of a period's rows is what a report must read."""
    rows = {row[0]: (row[1], row[3]) for row in plan}
    first_loop: dict[int, int] = {}
    for node, (parent, detail) in rows.items():
        if detail.startswith(("SCAN", "SEARCH")):
            first_loop.setdefault(parent, node)
    bad = []
    for node, (parent, detail) in rows.items():
        ancestors, up = [], parent
        while up in rows:
            ancestors.append(rows[up][1])
            up = rows[up][0]
        per_row = any(a.startswith("CORRELATED") for a in ancestors) or first_loop.get(parent) != node
        if detail.startswith("SCAN ") and not detail.startswith("SCAN CONSTANT") and per_row:
            bad.append(detail)
        searched = re.search(r"\((.*)\)$", detail)
        if detail.startswith("SEARCH ") and per_row and searched and "rowid" not in searched.group(1):
            columns = {re.split(r"[=<>]", term)[0].strip() for term in searched.group(1).split(" AND ")}
            if columns <= COARSE:
                bad.append(detail)
    return bad


def test_migration_0005_goes_down_and_up_again_with_rows_referencing_the_tables(any_db_url: str) -> None:
    """Going down rebuilds enrollment and agent_task on SQLite while other rows point at them (a task
    at its enrollment, a follow-up at its task): nothing is lost, and going up keys the rows again."""
    upgrade(any_db_url)
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    with Session(get_engine(any_db_url)) as session:
        customer_id, event_id = _customer_and_complaint(session, t0)
        enrollment = Enrollment(customer_id=customer_id, journey_id="complaint-response", journey_version="v",
                                occurrence=f"event-{event_id}", state="done", entered_at=t0, event_id=event_id)
        session.add(enrollment)
        session.flush()
        first = AgentTask(key="k1", customer_id=customer_id, enrollment_id=enrollment.id,
                          journey_id="complaint-response", journey_version="v", step_id="call",
                          occurrence=f"event-{event_id}", queue="complaints", due_at=t0, created_at=t0,
                          event_id=event_id)
        session.add(first)
        session.flush()
        session.add(AgentTask(key="k2", customer_id=customer_id, enrollment_id=enrollment.id,
                              journey_id="complaint-response", journey_version="v", step_id="call",
                              occurrence=f"event-{event_id}", queue="complaints", due_at=t0, created_at=t0,
                              parent_task_id=first.id, event_id=event_id))
        session.commit()
    get_engine.cache_clear()  # the migration changes the tables under the pooled connections
    downgrade(any_db_url, "0004")
    engine = get_engine(any_db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM agent_task WHERE enrollment_id IS NOT NULL")).scalar() == 2
        assert conn.execute(text("SELECT count(*) FROM enrollment")).scalar() == 1
    get_engine.cache_clear()
    upgrade(any_db_url)
    with get_engine(any_db_url).connect() as conn:
        assert conn.execute(text("SELECT event_id FROM enrollment")).scalar() == event_id
        assert set(conn.execute(text("SELECT event_id FROM agent_task")).scalars()) == {event_id}
