"""Atomic claiming: every due touch goes to exactly one worker, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import text

from engine.sending.claiming import claim_due, due_count
from store.clock import utcnow
from store.db import make_engine
from tests.dispatch_support import make_customers, make_touches


def test_claim_takes_only_due_touches_and_marks_them(migrated_any_db: str) -> None:
    engine = make_engine(migrated_any_db)
    try:
        ids = make_customers(engine, 30)
        make_touches(engine, ids[:10], step="due")
        make_touches(engine, ids[10:20], step="later", due=utcnow() + timedelta(hours=1))
        make_touches(engine, ids[20:], step="wechat", channel="wechat")
        with engine.begin() as conn:  # one touch waiting for its retry time
            conn.execute(text("UPDATE touch SET next_attempt_at = :t WHERE key = :k"),
                         {"t": utcnow() + timedelta(minutes=5), "k": f"{ids[0]}:j1:due:2026-01"})

        assert due_count(engine) == 19
        first = claim_due(engine, "w1", 5, channels=["sms"])
        rest = claim_due(engine, "w2", 100, channels=["sms"])
        assert len(first) == 5 and len(rest) == 4
        assert all(t.step_id == "due" and t.attempts == 1 for t in first + rest)
        assert claim_due(engine, "w3", 100, channels=["sms"]) == []

        with engine.connect() as conn:
            rows = conn.execute(text("SELECT claimed_by, status FROM touch WHERE step_id = 'due'")).all()
        by_worker = {r.claimed_by for r in rows if r.status == "sending"}
        assert by_worker == {"w1", "w2"}
        assert sum(1 for r in rows if r.status == "planned") == 1  # the one backing off
        assert len(claim_due(engine, "w1", 100)) == 10  # wechat ones, with no channel filter
    finally:
        engine.dispose()


def test_concurrent_claimers_get_disjoint_batches(migrated_any_db: str) -> None:
    setup = make_engine(migrated_any_db)
    ids = make_customers(setup, 2000)
    make_touches(setup, ids)
    setup.dispose()

    claimed: dict[str, list[int]] = {f"w{i}": [] for i in range(4)}
    emptied: dict[str, bool] = dict.fromkeys(claimed, False)
    barrier = threading.Barrier(4)

    def worker(name: str) -> None:
        engine = make_engine(migrated_any_db)  # its own connection pool, as a separate worker has
        try:
            # Rounds: all four claim at the same moment, then compare notes. Claims within a round
            # really race; the rounds make sure no worker drains the queue before the others start.
            while True:
                barrier.wait()
                batch = claim_due(engine, name, 97)
                claimed[name].extend(t.id for t in batch)
                emptied[name] = not batch
                barrier.wait()
                if all(emptied.values()):
                    return
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    every = [i for ids_ in claimed.values() for i in ids_]
    assert len(every) == 2000
    assert len(set(every)) == 2000
    assert all(claimed.values())  # every worker won batches in the race: they really shared the work
