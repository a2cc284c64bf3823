"""The ops journeys list and a journey's page find the touches, tasks and enrollments they count by index.

Their counts are of a period (the last seven days, the period a journey's page shows) or of what is in a
journey now, but ``touch``, ``agent_task`` and ``enrollment`` grow with the book's whole history: a count
that reads the table would make the pages slower every day the service runs. Each statement the two pages
send to those tables is EXPLAINed as SQLite would run it, and none may read the whole table or every row a
journey ever had.
"""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from store.db import session_scope
from tests.console.conftest import Seed, login
from tests.console.ops_seed import SPLIT_JOURNEY, seed_activity

COUNTED = ("touch", "agent_task", "enrollment")
# Partial indexes that keep only what is in a journey now (migration 0016): searched by the journey alone,
# they still read no history.
CURRENT_ONLY = ("ix_enrollment_journey_open",)


def _reads_history(db_url: str, statement: str, parameters: Any) -> list[str]:
    """The lines of the statement's plan that read a counted table's whole history: the whole table,
    or every row of a journey (an index searched by the journey alone, with no time range)."""
    with session_scope(db_url) as session:
        plan = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    found = []
    for *_, detail in plan:
        line = str(detail)
        if not any(line.startswith((f"SCAN {t}", f"SEARCH {t} ")) for t in COUNTED):
            continue
        condition = line.rsplit("(", 1)[-1].rstrip(")") if line.endswith(")") else ""
        by_journey_alone = condition.replace("ANY(", "").rstrip(")") == "journey_id=?"
        if line.startswith("SCAN") or (by_journey_alone and not any(f"INDEX {i} " in line for i in CURRENT_ONLY)):
            found.append(line)
    return found


def test_the_journey_pages_count_touches_and_tasks_by_index(
    client: TestClient, db_url: str, seed: Seed, statements: list[tuple[str, Any]],
) -> None:
    seed_activity(db_url, list(seed.customers.values()), seed.now)
    login(client, "olga")
    statements.clear()
    for path in ("/ops/journeys", f"/ops/journeys/{SPLIT_JOURNEY}", "/ops/journeys/complaint-response"):
        assert client.get(path).status_code == 200, path
    counted = [(s, p) for s, p in statements
               if s.lstrip().upper().startswith("SELECT") and any(f"FROM {t}" in s for t in COUNTED)]
    # The list's two counts, and on each journey page its touch, task and enrollment counts.
    assert len(counted) >= 12
    assert {t for t in COUNTED if not any(f"FROM {t}" in s for s, _ in counted)} == set()
    history = {s: lines for s, p in counted if (lines := _reads_history(db_url, s, p))}
    assert history == {}
