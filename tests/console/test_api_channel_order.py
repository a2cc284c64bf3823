"""A customer's preferred channels are taken or refused alike by the REST API and the CSV import:
the same list of channels, sent both ways, is stored the same or refused by both (a channel named
twice or one the product does not know), so what one door lets in the other does not turn away."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select
from starlette.testclient import TestClient

from store.db import session_scope
from store.importing import import_csv
from store.models import CHANNELS, Customer
from tests.console.conftest import API_KEY

KEY = {"X-API-Key": API_KEY}
_ids = itertools.count()


def _stored(url: str, external_id: str) -> list[str] | None:
    with session_scope(url) as s:
        row = s.exec(select(Customer).where(Customer.external_id == external_id)).first()
        return None if row is None else list(row.preferred_channels)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([*CHANNELS, "fax"]), min_size=1, max_size=6))
def test_the_api_and_the_import_agree_on_every_list_of_channels(
        client: TestClient, db_url: str, channels: list[str]) -> None:
    n = next(_ids)
    api_id, csv_id = f"API{n}", f"CSV{n}"
    answer = client.put(f"/api/customers/{api_id}", headers=KEY,
                        json={"name": "Ann", "preferred_channels": channels})
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "customers.csv"
        source.write_text(f'external_id,name,preferred_channels\n{csv_id},Ann,"{";".join(channels)}"\n',
                          encoding="utf-8")
        report = import_csv("customers", source, db_url, rejects_path=Path(folder) / "rejects.csv")
    taken = len(set(channels)) == len(channels) and "fax" not in channels
    assert answer.status_code == (201 if taken else 422), answer.text
    assert len(report.rejected) == (0 if taken else 1)
    assert _stored(db_url, api_id) == _stored(db_url, csv_id) == (channels if taken else None)
    if not taken:
        problem = str(answer.json()["detail"])
        assert ("more than once" in problem) == ("fax" not in channels)
