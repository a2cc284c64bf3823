"""A plan run catching up after the service was down says how far it has got, chunk by chunk, and one
that crashes halfway resumes from the same cursor without writing anything twice.

Five customers get a service notice every day at 10:00 (Shanghai). The service planned on Monday at
17:00 and was down until Thursday 10:30: the first run back plans three days for each customer, in
chunks of two customer ids, each committed on its own. It says it is catching up and, after each
chunk, how many touches it has written. The first attempt dies after its second chunk (the machine
goes down again): the cursor stays on Monday, and the next run plans the same window, writes only the
last chunk's touches and ends with each of the fifteen touches once. A tick five minutes later is no
catch-up and says nothing. Real planner, SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from engine.planning.chunk_planner import read_cursor
from engine.planning.planner import plan
from store.clock import simulated_time
from store.db import get_engine
from tests.plan_support import Book

DAILY = """\
id: daily-notice
name: Daily notice
category: service
entry: {schedule: {cron: "0 10 * * *"}}
reentry: {allowed: true}
steps:
  - {id: s0, send: {channels: [sms], template: msg}}
"""
MONDAY = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # 17:00 in Shanghai
THURSDAY = datetime(2027, 3, 4, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai


class MachineDown(RuntimeError):
    """The process dies between two chunks."""


def test_catch_up_says_how_far_it_got_and_resumes_after_a_crash_without_duplicates(book: Book) -> None:
    book.journey("daily-notice", DAILY)
    for _ in range(5):
        book.customer()
    with simulated_time(lambda: MONDAY):
        plan(MONDAY, MONDAY - timedelta(minutes=5), url=book.url)
    assert book.touches() == []  # nothing due before Tuesday 10:00

    said: list[str] = []

    def dies_after_two_chunks(line: str) -> None:
        said.append(line)
        if line.startswith("plan: caught up 2/"):
            raise MachineDown(line)

    with simulated_time(lambda: THURSDAY), pytest.raises(MachineDown):
        plan(THURSDAY, url=book.url, chunk=2, progress=dies_after_two_chunks)
    assert said == [
        "plan: catching up 2d17h30m missed since 2027-03-01 09:00 UTC: 3 chunks of customers with anything due, "
        "each committed on its own",
        "plan: caught up 1/3 chunks: 6 touches, 0 tasks written",
        "plan: caught up 2/3 chunks: 12 touches, 0 tasks written",
    ]
    # What the two chunks wrote is kept; the cursor did not move.
    assert len(book.touches()) == 12
    with Session(get_engine(book.url)) as session:
        assert read_cursor(session) == (MONDAY, MONDAY)

    again: list[str] = []
    with simulated_time(lambda: THURSDAY):
        result = plan(THURSDAY, url=book.url, chunk=2, progress=again.append)
    assert again[0].startswith("plan: catching up 2d17h30m missed since 2027-03-01 09:00 UTC: 3 chunks")
    assert again[1:] == [f"plan: caught up {n}/3 chunks: {written} touches, 0 tasks written"
                         for n, written in ((1, 0), (2, 0), (3, 3))]
    keys = [t.key for t in book.touches()]
    assert len(keys) == len(set(keys)) == 15 and result.touches_written == 3
    assert {key.split(":", 3)[3] for key in keys} == {f"2027-03-0{d}T10:00" for d in (2, 3, 4)}

    tick: list[str] = []
    with simulated_time(lambda: THURSDAY + timedelta(minutes=5)):
        plan(THURSDAY + timedelta(minutes=5), url=book.url, chunk=2, progress=tick.append)
    assert tick == []
