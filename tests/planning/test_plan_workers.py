"""A whole book planned on worker processes gives what one process gives, writes each touch
once, and a chunk that fails in a worker fails the run without losing the other chunks."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlmodel import Session, col

from engine.planning.plan_workers import MIN_PARALLEL_IDS, WORKERS_ENV, reachable_from_workers, workers_for
from engine.planning.planner import ChunkOutput, plan
from store.db import get_engine
from store.models import AgentTask, Enrollment
from tests.plan_support import WEEKLY_PUSH_OR_CALL, Book, utc

START, END = utc(2027, 2, 28), utc(2027, 3, 2)


def _customers(book: Book, n: int) -> list[int]:
    zones = ["Asia/Shanghai", "America/Los_Angeles", "Europe/London"]
    return [book.customer(attributes={"vip": i % 3 != 0}, timezone=zones[i % len(zones)],
                          consent_wechat=i % 4 != 1) for i in range(n)]


def _written_keys(url: str) -> tuple[list[str], list[str]]:
    with Session(get_engine(url)) as session:
        touches = sorted(k for (k,) in session.execute(text("SELECT key FROM touch")).all())
        tasks = sorted(k for (k,) in session.execute(select(col(AgentTask.key))).all())
    return touches, tasks


def test_two_workers_write_what_one_process_plans_and_a_rerun_adds_nothing(book: Book) -> None:
    book.journey("weekly", WEEKLY_PUSH_OR_CALL)
    ids = _customers(book, 11)
    seen: list[ChunkOutput] = []
    # A sink keeps a run in one process: this is the single-process plan to compare with.
    single = plan(END, START, url=book.url, dry_run=True, sink=seen.append, chunk=3)
    touch_keys = sorted(d.wanted.key for out in seen for d in out.decisions if d.planned)
    task_keys = sorted(t.key for out in seen for t in out.tasks)
    assert len(touch_keys) == 7 and len(task_keys) == 4  # 7 VIPs get the push, 4 others a call

    spread = plan(END, START, url=book.url, chunk=2, workers=2)  # six chunks over two processes
    assert _written_keys(book.url) == (touch_keys, task_keys)
    assert (spread.planned, spread.tasks, spread.touches_written, spread.tasks_written) == (7, 4, 7, 4)
    assert spread.enrollments_written == len(ids)
    assert spread.by_journey_channel == single.by_journey_channel
    assert spread.tasks_by_queue == single.tasks_by_queue

    again = plan(END, START, url=book.url, chunk=2, workers=2)
    assert (again.touches_written, again.tasks_written, again.enrollments_written) == (0, 0, 0)
    assert _written_keys(book.url) == (touch_keys, task_keys)


def test_a_chunk_failing_in_a_worker_fails_the_run_and_a_rerun_completes_it(sqlite_book: Book, db_url: str) -> None:
    book = sqlite_book  # the trigger below is SQLite's
    book.journey("weekly", WEEKLY_PUSH_OR_CALL)
    ids = _customers(book, 8)
    poisoned = ids[5]  # in the third chunk of two
    with get_engine(db_url).begin() as conn:
        conn.execute(text(f"CREATE TRIGGER refuse BEFORE INSERT ON enrollment WHEN NEW.customer_id = {poisoned} "
                          "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
    with pytest.raises(Exception, match="disk full"):
        plan(END, START, url=db_url, chunk=2, workers=2)
    with Session(get_engine(db_url)) as session:
        enrolled = {cid for (cid,) in session.execute(select(col(Enrollment.customer_id))).all()}
    assert not enrolled & {ids[4], ids[5]}  # the failed chunk wrote nothing of itself
    with get_engine(db_url).begin() as conn:
        conn.execute(text("DROP TRIGGER refuse"))
    rerun = plan(END, START, url=db_url, chunk=2, workers=2)
    assert rerun.enrollments_written == len(ids) - len(enrolled)
    with Session(get_engine(db_url)) as session:
        assert sorted(cid for (cid,) in session.execute(select(col(Enrollment.customer_id))).all()) == ids


def test_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert workers_for(MIN_PARALLEL_IDS - 1, 1000) == 1  # too small to gain from a second process
    assert workers_for(1_000_000, 20_000) == 4  # one per core, at most four
    assert workers_for(MIN_PARALLEL_IDS, 40_000) == 2  # never more than there are chunks
    assert workers_for(10, 2, requested=3) == 3  # asked for: given, even for a small book
    assert workers_for(10, 5, requested=3) == 2
    monkeypatch.setenv(WORKERS_ENV, "1")
    assert workers_for(1_000_000, 20_000) == 1
    assert workers_for(1_000_000, 20_000, requested=2) == 2
    for bad in ("two", "0", "-1"):
        monkeypatch.setenv(WORKERS_ENV, bad)
        with pytest.raises(ValueError, match=f"{WORKERS_ENV} must be a whole number of processes, 1 or more"):
            workers_for(1_000_000, 20_000)


def test_a_database_in_memory_is_planned_in_this_process(tmp_path: Path) -> None:
    with Session(get_engine("sqlite://")) as memory, Session(get_engine(f"sqlite:///{tmp_path / 'x.db'}")) as file:
        assert not reachable_from_workers(memory)
        assert reachable_from_workers(file)
