"""A report adds its total up from its groups, and a report by tier reads each customer's tier at the start
from a table it fills once (``engine.loop.metric_sql``). On the same book, on SQLite and PostgreSQL, both
give exactly what the formulation before them gives: one pass over all rows for the total, and the tier
history looked up again in every statement.
"""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from engine.demo.seeding import seed_book
from engine.loop.metric_sql import TIER_TABLE, Period, tiers_once
from engine.loop.metrics import FAMILIES, GROUPINGS, compute_metrics
from store.db import get_engine, session_scope
from tests.closed_loop_book import END, NOW, START, build


@pytest.fixture
def book(migrated_any_db: str) -> str:
    # The hand-made book (touches, tasks, complaints, answers, a tier change inside the period) beside
    # a seeded one (hundreds of customers over every tier, with policies expiring in the period).
    seed_book(migrated_any_db, 300, seed=4, as_of=date(2026, 1, 1))
    with session_scope(migrated_any_db) as session:
        build(session)
    return migrated_any_db


@pytest.mark.parametrize("by", GROUPINGS)
def test_the_total_added_up_from_the_groups_is_the_total_of_one_pass(book: str, by: str) -> None:
    one_pass = compute_metrics(START, END, now=NOW, url=book)
    grouped = compute_metrics(START, END, by, now=NOW, url=book)
    assert len(grouped.groups) > 1
    assert grouped.total == one_pass.total
    assert one_pass.total["planned"] and one_pass.total["renewals_due"] and one_pass.total["task_hours"]


def test_tiers_read_once_give_the_groups_the_tier_history_gives_per_statement(book: str) -> None:
    with get_engine(book).connect() as conn:
        ctx = Period(start=START, end=END, now=NOW, dialect=conn.dialect.name)
        per_statement = {name: family(conn, ctx, "tier") for name, family in FAMILIES}
        with tiers_once(conn, ctx) as once:
            from_table = {name: family(conn, once, "tier") for name, family in FAMILIES}
    assert from_table == per_statement
    # C5 was silver at the start and is potential now: the start counts, in both.
    assert from_table["customers"] is not None and "silver" in from_table["customers"].groups


def test_the_tier_table_goes_with_the_report(book: str) -> None:
    first = compute_metrics(START, END, "tier", now=NOW, url=book)
    again = compute_metrics(START, END, "tier", now=NOW, url=book)
    assert again.groups == first.groups
    with get_engine(book).connect() as conn:
        TIER_TABLE.create(conn)  # raises if a report left its table on the pooled connection
        TIER_TABLE.drop(conn)
        conn.commit()
        assert conn.execute(sa.select(sa.func.count()).select_from(sa.table("customer"))).scalar_one() > 300
