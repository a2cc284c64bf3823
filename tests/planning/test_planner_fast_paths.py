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


def test_churn_risk_reads_its_attribute_without_the_whole_dict(book: Book) -> None:
    """A journey reading ``customer.churn_risk`` used to make every customer's whole attributes
    decoded; now only the keys read and ``churn_risk`` are taken out in SQL. Same facts either way,
    and no decoded value is shared between customers (identical JSON texts are decoded once)."""
    attrs = [
        {"churn_risk": 0.7, "vip": True, "tags": ["a"], "other": "x" * 50},
        {"churn_risk": 0.7, "vip": True, "tags": ["a"], "other": "y"},
        {"vip": None, "level": 2},
        {"churn_risk": 0.1},
        {},
    ]
    ids = [book.customer(attributes=a) for a in attrs]
    needed = {"customer.churn_risk", "customer.attributes.vip", "customer.attributes.tags"}
    at = utc(2027, 3, 1)
    with Session(get_engine(book.url)) as session:
        narrow = load_customers(session, ids[0], ids[-1], None, needed, at)
        whole = load_customers(session, ids[0], ids[-1], None, needed, at, with_attributes=True)
    for cid in ids:
        for path in needed:
            assert narrow[cid].fact.get(path) == whole[cid].fact.get(path)
            assert type(narrow[cid].fact.get(path)) is type(whole[cid].fact.get(path))
        assert narrow[cid].attributes.get("churn_risk") == whole[cid].attributes.get("churn_risk")
    assert [narrow[cid].fact.get("customer.churn_risk") for cid in ids] == [0.7, 0.7, None, 0.1, None]
    assert "customer.attributes.other" not in narrow[ids[0]].fact
    first, second = narrow[ids[0]], narrow[ids[1]]
    assert first.fact["customer.attributes.tags"] is not second.fact["customer.attributes.tags"]
    assert first.attributes is not second.attributes


def test_reach_from_raw_columns_matches_the_values(book: Book) -> None:
    """Consent and contact are read as the database holds them and grouped by that; each
    customer's reach is what the values themselves say (an empty contact reaches no one, an
    unset marketing consent follows the channel's)."""
    shapes = [
        {},
        {"phone": "", "email": None, "consent_wechat": False},
        {"phone": None, "consent_sms_marketing": False, "consent_email_marketing": True},
        {"push_registration_id": "reg-1", "consent_push": True, "consent_push_marketing": None},
        {"wechat_openid": "", "consent_email": False, "consent_wechat_marketing": False},
    ]
    ids = [book.customer(**s) for s in shapes]
    with Session(get_engine(book.url)) as session:
        facts = load_customers(session, ids[0], ids[-1], None, set(), utc(2027, 3, 1))
        rows = {c.id: c for c in session.execute(select(Customer).where(col(Customer.id).in_(ids))).scalars()}
    for cid in ids:
        c, reach = rows[cid], facts[cid].reach
        assert reach.consent == {"sms": bool(c.consent_sms), "wechat": bool(c.consent_wechat),
                                 "email": bool(c.consent_email), "push": bool(c.consent_push)}
        assert reach.reachable == {"sms": bool(c.phone), "email": bool(c.email), "wechat": bool(c.wechat_openid),
                                   "push": bool(c.push_registration_id)}
        assert reach.marketing == {ch: getattr(c, f"consent_{ch}_marketing") is not False
                                   for ch in ("sms", "wechat", "email", "push")}
        assert facts[cid].fact["customer.has_phone"] is bool(c.phone)


def test_converted_columns_match_one_conversion_per_value() -> None:
    """The writer converts each distinct value once (a list value through the slow path): the
    driver gets what the column's own bind processor gives for every row."""
    from sqlalchemy.dialects import sqlite

    from engine.planning.plan_writer import _processed
    from store.models import Touch

    dialect = sqlite.dialect()
    moments = [datetime(2027, 3, 1, h % 3, tzinfo=UTC) for h in range(7)]
    cases = [(Touch.__table__.c.due_at, moments),  # type: ignore[attr-defined]
             (Touch.__table__.c.urgent, [True, False, True, True]),  # type: ignore[attr-defined]
             (Touch.__table__.c.fallback_channels, [["sms"], [], ["sms"], ["email", "sms"]])]  # type: ignore[attr-defined]
    for column, values in cases:
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        assert list(_processed(column, values, dialect)) == [process(v) for v in values]


def test_leftover_chunks_are_shared_among_the_workers() -> None:
    from engine.planning.plan_workers import balanced

    chunks = [(1, 20_000), (20_001, 40_000), (40_001, 60_000), (60_001, 80_000), (80_001, 99_999)]
    for workers in (1, 2, 3, 4):
        cut = balanced(chunks, workers)
        ids = [i for first, last in cut for i in range(first, last + 1)]
        assert ids == list(range(1, 100_000))  # every id once, in order
        assert workers == 1 or len(cut) % workers == 0
    assert balanced(chunks, 2)[-2:] == [(80_001, 90_000), (90_001, 99_999)]
    assert balanced(chunks, 5) == chunks


@pytest.mark.parametrize("dry_run", [False, True])
def test_the_run_holds_no_transaction_while_its_chunks_are_planned_elsewhere(book: Book, dry_run: bool) -> None:
    """Workers and Prefect slices plan the chunks for minutes on a large book; the run that
    handed them out must not keep a snapshot open all that time."""
    book.journey("weekly", WEEKLY_PUSH_OR_CALL)
    for _ in range(5):
        book.customer(attributes={"vip": True})
    open_while_elsewhere: list[bool] = []

    def elsewhere(run: planner.Planner, ranges: list[tuple[int, int]]) -> None:
        open_while_elsewhere.append(run.session.in_transaction())
        for first, last in ranges:
            run.plan_chunk(first, last, None)

    result = plan(utc(2027, 3, 2), utc(2027, 2, 28), url=book.url, chunk=2, dry_run=dry_run, chunk_runner=elsewhere)
    assert open_while_elsewhere == [False]
    assert (result.planned, result.touches_written) == (5, 0 if dry_run else 5)
