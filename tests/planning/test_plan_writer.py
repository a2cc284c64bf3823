"""The plan writer stores exactly what a chunk planned, on both databases.

SQLite goes through the driver's executemany, PostgreSQL through COPY into a staging table
and one ``INSERT … SELECT``: two ways of writing the same output, so every column is read
back and held to what was planned, with text a journey file can carry (tabs, newlines,
backslashes, quotes, any script), datetimes in any zone, and a second write of the same
chunk inserting nothing.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from engine.planning.delivery_rules import Decision, Wanted
from engine.planning.plan_output import ChunkOutput, PlannedEnrollment, PlannedTask, PlanResult
from engine.planning.plan_writer import write_chunk
from store.clock import as_utc
from store.db import get_engine
from store.migrate import upgrade
from store.models import AgentTask, Enrollment, Touch
from tests.plan_support import Book

# Text as journey files give it: no NUL (YAML cannot carry one), and the characters a text
# COPY must escape drawn often.
TEXT = st.text(st.sampled_from("\t\n\r\\'\",;|é保险 ") | st.characters(exclude_categories=("Cs",),
                                                                        exclude_characters="\x00"),
               min_size=1, max_size=30)
MOMENT = st.builds(
    lambda offset, zone: (datetime(2027, 3, 1, tzinfo=UTC) + timedelta(seconds=offset)).astimezone(ZoneInfo(zone)),
    st.integers(-10**7, 10**7), st.sampled_from(["UTC", "Asia/Shanghai", "America/Los_Angeles", "Asia/Kolkata"]))


@st.composite
def chunks(draw: st.DrawFn, customer_id: int) -> ChunkOutput:
    out = ChunkOutput()
    for i in range(draw(st.integers(0, 4))):
        planned = draw(st.booleans())
        wanted = Wanted(customer_id, draw(TEXT), draw(TEXT), f"s{i}", draw(TEXT), draw(st.sampled_from(
            ["service", "marketing"])), draw(st.booleans()), 1, [], draw(TEXT), draw(MOMENT),
            draw(st.none() | TEXT), draw(st.none() | TEXT))
        out.decisions.append(Decision(
            wanted, "planned" if planned else "dropped", draw(st.sampled_from(["sms", "wechat", "email"])),
            draw(st.lists(st.sampled_from(["sms", "wechat", "email"]), max_size=2)), draw(MOMENT),
            dropped_by=None if planned else "no_channel", reason="" if planned else draw(TEXT)))
    for i in range(draw(st.integers(0, 3))):
        out.tasks.append(PlannedTask(
            f"{customer_id}:task:{i}:{draw(TEXT)}", customer_id, draw(TEXT), draw(TEXT), f"t{i}", draw(TEXT),
            draw(TEXT), draw(st.integers(0, 9)), draw(st.none() | TEXT), None, draw(MOMENT), draw(MOMENT),
            "Asia/Shanghai", warn_at=draw(st.none() | MOMENT)))
    for i in range(draw(st.integers(0, 3))):
        exited = draw(st.booleans())
        out.enrollments.append(PlannedEnrollment(
            customer_id, f"j{i}", draw(TEXT), draw(TEXT), None if exited else draw(TEXT),
            "exited" if exited else "waiting", None if exited else draw(MOMENT), draw(st.none() | TEXT),
            draw(MOMENT), draw(MOMENT) if exited else None, draw(TEXT) if exited else None, draw(st.none() | TEXT),
            step_started_at=draw(st.none() | MOMENT)))
    return out


def _at(moment: datetime | None) -> datetime | None:
    return as_utc(moment) if moment is not None else None


def _stored(url: str, customer_id: int) -> tuple[set[tuple[object, ...]], set[tuple[object, ...]],
                                                set[tuple[object, ...]]]:
    with Session(get_engine(url)) as session:
        touches = {(t.key, t.journey_id, t.journey_version, t.step_id, t.occurrence, t.category, t.urgent, t.channel,
                    tuple(t.fallback_channels), t.template, t.split_branch, t.entry_rule, _at(t.planned_for),
                    _at(t.due_at), t.status, t.error_reason, t.attempts)
                   for t in session.exec(select(Touch).where(Touch.customer_id == customer_id))}
        tasks = {(t.key, t.journey_id, t.journey_version, t.step_id, t.occurrence, t.queue, t.priority, t.script,
                  t.assignee_id, t.status, _at(t.due_at), t.attempt, t.escalated, _at(t.warn_at))
                 for t in session.exec(select(AgentTask).where(AgentTask.customer_id == customer_id))}
        enrollments = {(e.journey_id, e.journey_version, e.occurrence, e.step_id, e.state, _at(e.next_at),
                        e.split_branch, _at(e.entered_at), _at(e.exited_at), e.exit_reason, e.entry_rule,
                        _at(e.step_started_at))
                       for e in session.exec(select(Enrollment).where(col(Enrollment.customer_id) == customer_id))}
    return touches, tasks, enrollments


def _planned(out: ChunkOutput) -> tuple[set[tuple[object, ...]], set[tuple[object, ...]], set[tuple[object, ...]]]:
    touches = {(d.wanted.key, d.wanted.journey_id, d.wanted.journey_version, d.wanted.step_id, d.wanted.occurrence,
                d.wanted.category, d.wanted.urgent, d.channel, tuple(d.fallback_channels), d.wanted.template,
                d.wanted.split_branch, d.wanted.entry_rule, _at(d.wanted.planned_for), _at(d.due_at), d.status,
                None if d.planned else f"{d.dropped_by}: {d.reason}"[:255], 0) for d in out.decisions}
    tasks = {(t.key, t.journey_id, t.journey_version, t.step_id, t.occurrence, t.queue, t.priority, t.script,
              t.assignee_id, "open", _at(t.due_at), 1, False, _at(t.warn_at)) for t in out.tasks}
    enrollments = {(e.journey_id, e.journey_version, e.occurrence, e.step_id, e.state, _at(e.next_at), e.split_branch,
                    _at(e.entered_at), _at(e.exited_at), e.exit_reason, e.entry_rule, _at(e.step_started_at))
                   for e in out.enrollments}
    return touches, tasks, enrollments


def _server_zone_not_utc(url: str) -> None:
    """The sessions' zone away from UTC, as a production server's may be: a datetime that reached
    the server without its offset would then be stored hours off, and the test would see it."""
    engine = get_engine(url)
    with engine.connect() as conn:
        name = conn.exec_driver_sql("SELECT current_database()").scalar()
        conn.exec_driver_sql(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/Los_Angeles'")
        conn.commit()
    engine.dispose()  # the setting holds for sessions opened after it


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_column_a_chunk_planned_is_stored_as_planned(book: Book, data: st.DataObject) -> None:
    customer_id = book.customer()  # one of its own per example: the database outlives the examples
    migrated_any_db = book.url
    if migrated_any_db.startswith("postgresql"):
        _server_zone_not_utc(migrated_any_db)
    out = data.draw(chunks(customer_id))
    moment = datetime(2027, 3, 1, tzinfo=UTC)
    first, again = PlanResult(moment, moment, False), PlanResult(moment, moment, False)
    with Session(get_engine(migrated_any_db)) as session:
        write_chunk(session, out, first, contextlib.nullcontext())
    with Session(get_engine(migrated_any_db)) as session:
        write_chunk(session, out, again, contextlib.nullcontext())

    assert _stored(migrated_any_db, customer_id) == _planned(out)
    planned = sum(d.planned for d in out.decisions)
    assert (first.touches_written, first.dropped_written, first.tasks_written, first.enrollments_written) == (
        planned, len(out.decisions) - planned, len(out.tasks), len(out.enrollments))
    # The second write of the same chunk meets every key already stored.
    assert (again.touches_written, again.dropped_written, again.tasks_written, again.enrollments_written) == (
        0, 0, 0, 0)


@pytest.mark.postgres
def test_a_failed_chunk_leaves_nothing_in_the_staging_tables(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk whose insert fails rolls back; the connection's next chunk starts from empty
    staging tables (PostgreSQL's: SQLite inserts directly), so no row of the failed one is
    written with it."""
    upgrade(pg_url)
    book = Book(tmp_path, pg_url, monkeypatch)
    engine = get_engine(pg_url)
    customer_id = book.customer()
    moment = datetime(2027, 3, 1, 2, tzinfo=UTC)

    def chunk(step: str, customer: int) -> ChunkOutput:
        wanted = Wanted(customer, "j", "v1", step, "o", "service", False, 1, [], "t", moment)
        return ChunkOutput(decisions=[Decision(wanted, "planned", "sms", [], moment)])

    result = PlanResult(moment, moment, False)
    with Session(engine) as session:
        # The first chunk leaves the connection's staging tables behind, committed and empty.
        write_chunk(session, chunk("first", customer_id), result, contextlib.nullcontext())
        with pytest.raises(Exception, match="foreign key"):
            write_chunk(session, chunk("failed", customer_id + 1000), PlanResult(moment, moment, False),
                        contextlib.nullcontext())
        write_chunk(session, chunk("next", customer_id), result, contextlib.nullcontext())
    with Session(engine) as session:
        assert sorted(t.step_id for t in session.exec(select(Touch))) == ["first", "next"]
    assert result.touches_written == 2


def test_two_planners_writing_one_chunk_at_once_store_each_row_once(book: Book) -> None:
    """Two planners that planned the same chunk (an overlapping run) write it at the same time:
    the conflict keys let each row in once, and the counts say which writer stored what."""
    customer_id = book.customer()
    moment = datetime(2027, 3, 1, 2, tzinfo=UTC)
    wanted = [Wanted(customer_id, "j", "v1", f"s{i}", "o", "service", False, 1, [], "t", moment) for i in range(300)]
    out = ChunkOutput(decisions=[Decision(w, "planned", "sms", ["email"], moment) for w in wanted],
                      enrollments=[PlannedEnrollment(customer_id, "j", "v1", "o", "s299", "waiting", moment, None,
                                                     moment, None, None, None)])
    results = [PlanResult(moment, moment, False) for _ in range(2)]
    start = threading.Barrier(2)

    def write(result: PlanResult) -> None:
        with Session(get_engine(book.url)) as session:
            start.wait()
            write_chunk(session, out, result, contextlib.nullcontext())

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(write, results))

    assert sum(r.touches_written for r in results) == 300
    assert sum(r.enrollments_written for r in results) == 1
    touches, _tasks, enrollments = _stored(book.url, customer_id)
    assert touches == _planned(out)[0]
    assert len(enrollments) == 1
