"""The planner's bulk paths give what the plain ones give: attribute keys taken out of the
JSON in SQL, driver rows read without SQLAlchemy's Row objects, a book written chunk by chunk
(several chunks, a failing write)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from engine.planning import planner
from engine.planning.facts import fetch_rows, load_customers
from engine.planning.planner import plan
from store.db import get_engine
from store.models import Customer, Enrollment
from tests.plan_support import WEEKLY_PUSH_OR_CALL, Book, utc


def test_attribute_keys_from_sql_keep_their_json_types(book: Book) -> None:
    attrs = [
        {"vip": True, "level": 3, "segment": "mid", "tags": ["a", "b"], "other": "x" * 50},
        {"vip": False, "level": 1.5},
        {},
    ]
    ids = [book.customer(attributes=a) for a in attrs]
    needed = {"customer.attributes.vip", "customer.attributes.level", "customer.attributes.segment",
              "customer.attributes.tags"}
    at = utc(2027, 3, 1)
    with Session(get_engine(book.url)) as session:
        narrow = load_customers(session, ids[0], ids[-1], None, needed, at)
        whole = load_customers(session, ids[0], ids[-1], None, needed, at, with_attributes=True)
        one_key = load_customers(session, ids[0], ids[-1], None, {"customer.attributes.vip"}, at)
    for cid in ids:
        for path in needed:
            assert narrow[cid].fact.get(path) == whole[cid].fact.get(path)
            assert type(narrow[cid].fact.get(path)) is type(whole[cid].fact.get(path))
        assert type(one_key[cid].fact.get("customer.attributes.vip")) is type(whole[cid].fact.get(
            "customer.attributes.vip"))
    assert narrow[ids[0]].fact["customer.attributes.vip"] is True
    assert narrow[ids[0]].fact["customer.attributes.tags"] == ["a", "b"]
    assert "customer.attributes.other" not in narrow[ids[0]].fact  # no condition reads it
    assert "customer.attributes.vip" not in narrow[ids[2]].fact


def test_fetch_rows_matches_execute_all(book: Book) -> None:
    book.customer(birthday=date(1990, 2, 28), consent_sms=False, last_active_at=datetime(2026, 5, 1, 8, tzinfo=UTC))
    book.customer(birthday=None, consent_sms=True, last_active_at=None)
    stmt = select(col(Customer.id), col(Customer.birthday), col(Customer.consent_sms), col(Customer.last_active_at),
                  col(Customer.preferred_channels), col(Customer.tier))
    with Session(get_engine(book.url)) as session:
        expected = [tuple(r) for r in session.execute(stmt).all()]
        got = [tuple(r) for r in fetch_rows(session, stmt)]
    assert got == expected
    assert [type(v) for v in got[0]] == [type(v) for v in expected[0]]


def test_a_book_written_in_chunks_equals_one_chunk(book: Book, tmp_path: Path) -> None:
    book.journey("weekly", WEEKLY_PUSH_OR_CALL)
    for i in range(7):
        book.customer(attributes={"vip": i % 2 == 0}, timezone="America/Los_Angeles" if i == 3 else "Asia/Shanghai")
    result = plan(utc(2027, 3, 2), utc(2027, 2, 28), url=book.url, chunk=2)  # four chunks
    assert (result.touches_written, result.enrollments_written) == (4, 7)
    keys = [t.key for t in book.touches()]
    again = plan(utc(2027, 3, 2), utc(2027, 2, 28), url=book.url, chunk=100)
    assert (again.touches_written, again.enrollments_written) == (0, 0)
    assert [t.key for t in book.touches()] == keys
    dry = plan(utc(2027, 3, 2), utc(2027, 2, 28), url=book.url, chunk=100, dry_run=True)
    assert dry.planned == 0  # the same run in one chunk finds everything already done


def test_a_failing_chunk_write_fails_the_run_and_keeps_earlier_chunks(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    book.journey("weekly", WEEKLY_PUSH_OR_CALL)
    ids = [book.customer(attributes={"vip": True}) for _ in range(4)]
    real = planner.Planner._write
    calls: list[int] = []

    def failing(self: planner.Planner, out: planner.ChunkOutput) -> None:
        calls.append(len(calls))
        if len(calls) == 2:
            raise RuntimeError("disk full")
        real(self, out)

    monkeypatch.setattr(planner.Planner, "_write", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        plan(utc(2027, 3, 2), utc(2027, 2, 28), url=book.url, chunk=2)
    with Session(get_engine(book.url)) as session:
        enrolled = sorted(cid for (cid,) in session.execute(select(col(Enrollment.customer_id))).all())
    assert enrolled == ids[:2]  # the first chunk committed, the failed one wrote nothing
    monkeypatch.setattr(planner.Planner, "_write", real)
    rerun = plan(utc(2027, 3, 2), utc(2027, 2, 28), url=book.url, chunk=2)
    assert (rerun.touches_written, rerun.enrollments_written) == (2, 2)
