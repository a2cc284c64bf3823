"""The probe for what is due (``engine.planning.due_chunks``) never leaves out a chunk that has
something to plan: checked against walking every chunk of a seeded book with the shipped
journeys, for windows of 5 minutes to 2 days, with waiting enrollments and unprocessed events;
and a tick with nothing due walks fewer chunks than the book has."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text
from sqlmodel import Session

from engine.demo.seeding import seed_book
from engine.language.journey_registry import load_delivery_config, load_in_force
from engine.planning.due_chunks import book_zones, chunk_ranges, due_ranges
from engine.planning.journeys_in_force import active_journeys
from engine.planning.plan_output import ChunkOutput
from engine.planning.planner import Planner, plan
from store.db import get_engine
from store.migrate import upgrade

DAY_END = datetime(2027, 3, 1, 16, 0, tzinfo=UTC)
CHUNK = 25


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """400 customers, a written day (enrollments waiting), and unprocessed events for a few."""
    url = f"sqlite:///{tmp_path_factory.mktemp('due') / 'book.db'}"
    upgrade(url)
    seed_book(url, 400, seed=3, as_of=date(2027, 2, 1))
    plan(DAY_END, DAY_END - timedelta(days=1), url=url, workers=1)
    with get_engine(url).begin() as conn:
        for i, (cid, kind) in enumerate([(17, "complaint.filed"), (230, "app.login"), (388, "survey.answered")]):
            at = DAY_END + timedelta(hours=3 + i)
            conn.execute(text("INSERT INTO event (external_id, type, customer_id, data, occurred_at, received_at) "
                              "VALUES (:x, :t, :c, :d, :o, :o)"),
                         {"x": f"due-{i}", "t": kind, "c": cid, "d": '{"score": 3}', "o": at})
    yield url
    get_engine.cache_clear()


def _planner(url: str, start: datetime, end: datetime, now: datetime, sink: object) -> tuple[Planner, int, int]:
    session = Session(get_engine(url), expire_on_commit=False)
    in_force = load_in_force(session)
    session.rollback()
    journeys = active_journeys(session, in_force.journeys.values())
    planner = Planner(session, journeys, load_delivery_config(), start, end, now=now, dry_run=True, chunk=CHUNK,
                      sink=sink)  # type: ignore[arg-type]
    lo, hi = session.execute(text("SELECT min(id), max(id) FROM customer")).one()
    planner.candidates.timezones = book_zones(session)
    return planner, lo, hi


@settings(max_examples=12, deadline=None)
@given(offset=st.integers(0, 3 * 24 * 60), length=st.sampled_from([5, 60, 24 * 60, 2 * 24 * 60]),
       ahead=st.sampled_from([0, 18 * 60]))
def test_every_chunk_with_something_to_plan_is_due(seeded: str, offset: int, length: int, ahead: int) -> None:
    start = DAY_END + timedelta(minutes=offset)
    now = start + timedelta(minutes=length)
    produced: list[tuple[int, int]] = []
    current: list[tuple[int, int]] = []

    def sink(out: ChunkOutput) -> None:
        produced.append(current[-1])

    planner, lo, hi = _planner(seeded, start, now + timedelta(minutes=ahead), now, sink)
    for first, last in chunk_ranges(lo, hi, CHUNK):
        current.append((first, last))
        planner.plan_chunk(first, last, None)
    due = due_ranges(planner.candidates, lo, hi, CHUNK)
    assert set(produced) <= set(due), (start, now, sorted(set(produced) - set(due)))
    planner.session.close()


# Everything up to 02:00 UTC written, then a 5-minute tick in which no schedule of the shipped
# journeys fires in the book's zones.
TICK_START = datetime(2027, 3, 2, 2, 0, tzinfo=UTC)


def _written_copy(seeded: str, tmp_path: Path) -> Path:
    """A copy of the seeded book, planned and written up to ``TICK_START``."""
    copy = tmp_path / "copy.db"
    with sqlite3.connect(seeded.removeprefix("sqlite:///")) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    plan(TICK_START, url=f"sqlite:///{copy}", workers=1)
    return copy


def test_a_tick_with_nothing_due_walks_few_chunks(seeded: str, tmp_path: Path) -> None:
    url = f"sqlite:///{_written_copy(seeded, tmp_path)}"
    start = TICK_START
    now = start + timedelta(minutes=5)
    planner, lo, hi = _planner(url, start, now, now, lambda out: None)
    all_chunks = chunk_ranges(lo, hi, CHUNK)
    due = due_ranges(planner.candidates, lo, hi, CHUNK)
    assert len(all_chunks) == 16
    assert len(due) <= 2, due
    planner.session.close()


# The book's tables: a statement of a no-op tick that scans one of them (the table, or a whole
# index of it), or reads every row of a journey (an index searched by the journey alone: migration
# 0016's by-journey indexes of the ops pages), costs what the book holds, not what is due.
BOOK_SCAN = re.compile(r"\bSCAN (customer|enrollment|touch|agent_task|event|policy|claim)\b"
                       r"|\bSEARCH \w+ USING (COVERING )?INDEX \w+ \((ANY\()?journey_id=\?\)?\)$")


def test_a_tick_with_nothing_due_reads_no_table_of_the_book_whole(seeded: str, tmp_path: Path) -> None:
    copy = _written_copy(seeded, tmp_path)
    url = f"sqlite:///{copy}"
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if not many and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", record)
    try:
        plan(TICK_START + timedelta(minutes=5), url=url, workers=1)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert any("enrollment" in s for s, _ in statements)  # the probe of waits ending was asked
    with sqlite3.connect(copy) as conn:
        scans = {s: [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {s}", p or ())  # nosec B608 # the tick's own SQL
                     if BOOK_SCAN.search(row[-1])] for s, p in statements}
    assert not {s: lines for s, lines in scans.items() if lines}


def test_chunk_ranges_cover_the_ids_once() -> None:
    assert chunk_ranges(5, 14, 4) == [(5, 8), (9, 12), (13, 14)]
    assert chunk_ranges(1, 1, 20_000) == [(1, 1)]
