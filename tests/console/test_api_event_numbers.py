"""The numbers of an event's data are bounded as the API's other JSON numbers are: a whole number past a
double's range (about 1.8e308, as 1e400 already was) is refused as malformed JSON, 422 ``json_invalid``,
and nothing is stored, whether it has 400 digits or 5,000. Before, 400 digits were stored (PostgreSQL's
jsonb holds them, but read as the float ``amount`` is they overflow) and 5,000 answered a bare 400. The
largest numbers a double holds still go in. On SQLite and PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from sqlmodel import func, select
from starlette.testclient import TestClient

from console.app import create_app
from store.db import session_scope
from store.models import Event
from tests.console.conftest import API_KEY, seed_console

KEY = {"X-API-Key": API_KEY, "content-type": "application/json"}
LARGEST = int(sys.float_info.max)
TOO_LARGE = {
    "just past a double": str(LARGEST + 1),
    "400 digits": "1" + "0" * 399,
    "negative": "-" + "9" * 400,
    "5,000 digits": "7" * 5000,
}


@pytest.fixture
def api(migrated_any_db: str, console_env: None) -> Iterator[TestClient]:
    seed_console(migrated_any_db)
    with TestClient(create_app(migrated_any_db)) as client:
        yield client


def events(url: str) -> int:
    with session_scope(url) as s:
        return int(s.exec(select(func.count()).select_from(Event)).one())


def claim(event_id: str, amount: str) -> bytes:
    # Written out rather than json.dumps'd: the number goes on the wire exactly as typed.
    return (f'{{"event_id": "{event_id}", "type": "claim.filed", "customer_id": "C1", '
            f'"data": {{"claim_id": "K1", "amount": {amount}, "product_line": "health"}}}}').encode()


@pytest.mark.parametrize("amount", sorted(TOO_LARGE))
def test_a_whole_number_past_a_double_is_refused_and_nothing_stored(api: TestClient, migrated_any_db: str,
                                                                    amount: str) -> None:
    before = events(migrated_any_db)
    answer = api.post("/api/events", headers=KEY, content=claim("big", TOO_LARGE[amount]))
    assert answer.status_code == 422, answer.text
    [detail] = answer.json()["detail"]
    assert detail["type"] == "json_invalid" and "past the range of a number" in detail["msg"], detail
    assert events(migrated_any_db) == before


def test_the_largest_numbers_a_double_holds_are_stored(api: TestClient, migrated_any_db: str) -> None:
    for n, amount in enumerate((str(LARGEST), "-" + str(LARGEST), "1.7976931348623157e308", "5e-324")):
        answer = api.post("/api/events", headers=KEY, content=claim(f"edge-{n}", amount))
        assert answer.status_code == 201, (amount, answer.text)
    with session_scope(migrated_any_db) as s:
        amounts = [e.data["amount"] for e in s.exec(select(Event).order_by(Event.id)).all()]  # type: ignore[arg-type]
    assert amounts[-4:] == [LARGEST, -LARGEST, sys.float_info.max, 5e-324]
