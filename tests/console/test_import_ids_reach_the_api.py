"""Every customer ``journeys import`` creates can be read back through the API by its id: the import
takes a new row's id by the API's rule (tests/store/test_import_ids.py)."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from store.bulk_writer import CUSTOMER
from store.importing import import_csv
from tests.console.conftest import API_KEY
from tests.db_support import rows


def test_every_customer_the_import_creates_the_api_can_read(client: TestClient, db_url: str, tmp_path: Path) -> None:
    text = "external_id,name\nＣ００１,全角\nC 8,空格\nC-9,好\n"
    (tmp_path / "c.csv").write_text(text, encoding="utf-8")
    import_csv("customers", tmp_path / "c.csv", db_url)
    created = [r[0] for r in rows(db_url, CUSTOMER, "external_id")]
    assert "C-9" in created
    for external_id in created:
        assert client.get(f"/api/customers/{external_id}", headers={"X-API-Key": API_KEY}).status_code == 200
