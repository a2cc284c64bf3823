"""``PUT /api/customers/{id}`` takes an attribute name only if the CSV import's ``attr.<name>`` column
gives it back as it is, and no more attributes than a customer may have.

An export of the book has a column per attribute name and is meant to import again. The API took any
name: an upper-case one came back renamed (the import reads names in lower case), and a blank one, one
of 65 characters, one with a line break, or "VIP" beside another customer's "vip", made the whole
export refused on import; 101 attributes made the customer's row refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from store.db import session_scope
from store.importing import ImportFileError, import_csv
from store.importing.fields import MAX_ATTRIBUTES
from store.models import Customer
from tests.console.conftest import API_KEY, Seed

HEADERS = {"X-API-Key": API_KEY}
NAMES = ["vip", "service_preference", "VIP", "Vip", "", " ", " vip", "vip ", "a" * 64, "a" * 65, "note\nline",
         "tab\there", "积分", "a.b", "a,b", "renewal-date"]


def _as_imported(db_url: str, tmp_path: Path, name: str) -> bool:
    """Whether an import file with the column attr.<name> stores the attribute under ``name`` itself."""
    path = tmp_path / "c.csv"
    header = f"attr.{name}".replace('"', '""')
    path.write_text(f'external_id,name,"{header}"\nI1,Ivy,1\n', encoding="utf-8")
    try:
        report = import_csv("customers", path, db_url)
    except ImportFileError:
        return False
    with session_scope(db_url) as s:
        row = s.exec(select(Customer).where(Customer.external_id == "I1")).first()
        return report.rejected == [] and row is not None and name in (row.attributes or {})


@pytest.mark.parametrize("name", NAMES)
def test_the_api_takes_an_attribute_name_the_import_gives_back(client: TestClient, seed: Seed, db_url: str,
                                                                tmp_path: Path, name: str) -> None:
    taken = _as_imported(db_url, tmp_path, name)
    answer = client.put("/api/customers/A1", headers=HEADERS, json={"name": "客户", "attributes": {name: 1}})
    if taken:
        assert answer.status_code == 201, answer.text
    else:
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "attributes"]


def test_no_more_attributes_than_a_customer_may_have(client: TestClient, seed: Seed) -> None:
    many = {f"a{i}": i for i in range(MAX_ATTRIBUTES + 1)}
    answer = client.put("/api/customers/A2", headers=HEADERS, json={"name": "客户", "attributes": many})
    assert answer.status_code == 422 and f"at most {MAX_ATTRIBUTES}" in answer.text
    many.pop("a0")
    answer = client.put("/api/customers/A2", headers=HEADERS, json={"name": "客户", "attributes": many})
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(("value", "taken"), [
    (1, True), (2.5, True), (True, True), ("金卡客户", True), ("line one\nline two", True), ("n" * 1000, True),
    ([1, 2], False), ({"a": 1}, False), (None, False), ("n" * 1001, False), ("bell\a", False)])
def test_an_attribute_holds_one_value_as_an_imported_cell_does(client: TestClient, seed: Seed, db_url: str,
                                                               value: object, taken: bool) -> None:
    """A list, a mapping or null was stored as given: no export column holds it, no condition compares it,
    and an update step or an import may not write one (engine.language.journey_bounds, fields.attribute)."""
    answer = client.put("/api/customers/A3", headers=HEADERS, json={"name": "客户", "attributes": {"x": value}})
    assert answer.status_code == (201 if taken else 422), answer.text
    with session_scope(db_url) as s:
        row = s.exec(select(Customer).where(Customer.external_id == "A3")).first()
        assert (row is not None and row.attributes == {"x": value}) is taken
