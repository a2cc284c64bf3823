"""A tier set through the API is recorded in the tier history as the import records it.

The reports by tier read a customer's tier at each moment from the tier history (engine.loop.metric_sql.tier_at).
``journeys import`` records every tier it changes there (reason ``import``); ``PUT /api/customers/{id}``
changed the tier and recorded nothing, so a customer a CRM moved from silver to gold on the 15th counted as
gold for the whole month, and ``tier_updated_at`` stayed empty. Differential: the same tiers at the same
moments, through the API and through the import, leave the same history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from starlette.testclient import TestClient

from store.clock import simulated_time
from store.db import make_engine
from store.importing import import_csv
from tests.console.conftest import API_KEY

KEY = {"X-API-Key": API_KEY}
# A new silver customer, moved to gold, then sent gold again (no move).
STEPS = [(datetime(2027, 3, 1, 2, 0, tzinfo=UTC), "silver"), (datetime(2027, 3, 15, 2, 0, tzinfo=UTC), "gold"),
         (datetime(2027, 3, 20, 2, 0, tzinfo=UTC), "gold")]


def _history(url: str, external_id: str) -> tuple[list[tuple[object, ...]], object]:
    engine = make_engine(url)
    with engine.connect() as conn:
        moves = [tuple(r) for r in conn.execute(text(
            "SELECT tc.from_tier, tc.to_tier, tc.changed_at FROM tier_change tc JOIN customer c "
            "ON c.id = tc.customer_id WHERE c.external_id = :e ORDER BY tc.changed_at, tc.id"), {"e": external_id})]
        updated = conn.execute(text("SELECT tier_updated_at FROM customer WHERE external_id = :e"),
                               {"e": external_id}).scalar_one()
    engine.dispose()
    return moves, updated


def test_the_api_and_the_import_leave_the_same_tier_history(client: TestClient, db_url: str, tmp_path: Path) -> None:
    for n, (at, tier) in enumerate(STEPS):
        with simulated_time(lambda at=at: at):
            answer = client.put("/api/customers/API1", headers=KEY, json={"name": "Via API", "tier": tier})
            assert answer.status_code == (201 if n == 0 else 200), answer.text
            path = tmp_path / f"step{n}.csv"
            path.write_text(f"external_id,name,tier\nCSV1,Via import,{tier}\n", encoding="utf-8")
            assert import_csv("customers", path, db_url, tmp_path / f"rejects{n}.csv").rejected == []
    via_api, via_import = _history(db_url, "API1"), _history(db_url, "CSV1")
    assert [move[:2] for move in via_api[0]] == [(None, "silver"), ("silver", "gold")]
    assert via_api == via_import
