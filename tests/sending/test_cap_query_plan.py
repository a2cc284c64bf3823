"""The caps' query reads the batch's customers' touches, not every touch gone out in the window.

Each batch asks which marketing touches went out to its customers (``engine.sending.cap_check``). Searched
by status and due time, that reads every touch sent to anyone in the cap's window: a cost growing with
the day's sends, paid by every batch. Searched by customer and due time, it reads the batch's customers'
touches only. The statements the caps send are EXPLAINed as SQLite would run them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event
from sqlmodel import Session

from engine.sending.cap_check import over_cap, over_limits
from engine.sending.claiming import claim_due
from store.clock import utcnow
from store.db import make_engine
from tests.dispatch_support import make_customers, make_touches


def test_the_caps_search_the_touches_of_the_batchs_customers(db_url: str) -> None:
    engine = make_engine(db_url)
    now = utcnow()
    ids = make_customers(engine, 6)
    make_touches(engine, ids, journey="push", due=now - timedelta(minutes=5))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE touch SET category = 'marketing'")
    claimed = claim_due(engine, "w1", 10, now)
    sent: list[tuple[str, Any]] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _k, stmt, params, *_: sent.append((stmt, params)))
    with Session(engine) as session:
        batch = {t.id for t in claimed}
        over_cap(session, claimed, batch, 2, timedelta(days=7))
        over_limits(session, claimed, batch, {"sms": (1, timedelta(days=1))}, {"push": (1, timedelta(days=1))})
    caps = [(s, p) for s, p in sent if "FROM touch" in s]
    assert len(caps) == 3  # the marketing cap, the channel's and the journey's
    with engine.connect() as conn:
        plans = [[str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}", p).all()] for s, p in caps]
    by_customer = "SEARCH touch USING INDEX ix_touch_customer_due (customer_id=? AND due_at>? AND due_at<?)"
    for plan in plans:
        assert plan == [by_customer], plan
    engine.dispose()
