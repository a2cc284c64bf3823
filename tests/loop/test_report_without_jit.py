"""PostgreSQL's JIT compiler is off for the report's statements, and only for them.

Each family statement of a report is estimated above every JIT threshold (it reads a month of the book), and
PostgreSQL compiled its expressions before running it, which took longer than running it (see
``engine.loop.metric_sql.without_jit``). The setting is the report's transaction's own: the pooled
connection goes back with the server's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from engine.loop.metrics import churn_by_tier, compute_metrics
from store.db import get_engine
from store.migrate import upgrade

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)


def _jit_setting(conn: Any) -> str:
    return str(conn.exec_driver_sql("SHOW jit").scalar_one())


@pytest.mark.postgres
def test_report_statements_run_without_jit_and_leave_the_connection_as_found(pg_url: str) -> None:
    upgrade(pg_url)
    engine = get_engine(pg_url)
    with engine.connect() as conn:
        server = _jit_setting(conn)
    seen: list[str] = []

    def note(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # The families' statements and the tiers at the start: the report's own, on its connection.
        if "family_rows" in statement or "report_customer_tier" in statement:
            row = cursor.connection.execute("SHOW jit").fetchone()
            seen.append(row[0])

    event.listen(engine, "before_cursor_execute", note)
    try:
        for by in (None, "tier", "journey"):
            compute_metrics(START, END, by, now=END + timedelta(days=1), url=pg_url)
        churn_by_tier(START, END, url=pg_url)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert len(seen) >= 20
    assert set(seen) == {"off"}
    with engine.connect() as conn:
        assert _jit_setting(conn) == server
