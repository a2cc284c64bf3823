"""The import creates no customer, policy or claim under an id the API could never name: the API's ids
are printable ASCII without spaces (console.text_rules), and a full-width ``Ｃ００１`` typed with a
Chinese input method, or a zero-width or no-break space pasted inside an id, made a second customer
that ``GET /api/customers/{id}`` and an event's ``customer_id`` refused as a 422."""

from __future__ import annotations

from pathlib import Path

from store.bulk_writer import CLAIM, CUSTOMER, POLICY
from store.clock import utcnow
from store.importing import import_csv
from store.models import Customer
from tests.db_support import inserted, rows


def _reason(shown: str, position: int) -> str:
    return (f"external_id has {shown} at position {position}: an id is printable ASCII "
            "(letters, digits, punctuation) without spaces")


def _rejected(url: str, kind: str, path: Path, text: str) -> list[tuple[int, str]]:
    path.write_text(text, encoding="utf-8")
    return [(r.line, r.reason) for r in import_csv(kind, path, url).rejected]


def test_rows_are_not_created_under_ids_the_api_cannot_name(migrated_any_db: str, tmp_path: Path) -> None:
    url = migrated_any_db
    customers = "external_id,name\nＣ００１,全角\nC001\u200b,零宽\nC 002,空格\nC\u00a0003,不换行\nC004,好\n"
    assert _rejected(url, "customers", tmp_path / "c.csv", customers) == [
        (2, _reason("'Ｃ' (U+FF23)", 1)), (3, _reason("U+200B", 5)), (4, _reason("U+0020", 2)),
        (5, _reason("U+00A0", 2))]
    policies = ("external_id,customer_external_id,product_line,annual_premium,start_date,expiry_date\n"
                "保单1,C004,motor,100,2026-01-01,2027-01-01\nP1,C004,motor,100,2026-01-01,2027-01-01\n")
    assert _rejected(url, "policies", tmp_path / "p.csv", policies) == [(2, _reason("'保' (U+4FDD)", 1))]
    claims = "external_id,customer_external_id,filed_at,amount\nL 1,C004,2026-05-01,10\nL1,C004,2026-05-01,10\n"
    assert _rejected(url, "claims", tmp_path / "l.csv", claims) == [(2, _reason("U+0020", 2))]
    assert (rows(url, CUSTOMER, "external_id"), rows(url, POLICY, "external_id"), rows(url, CLAIM, "external_id")) == (
        [("C004",)], [("P1",)], [("L1",)])


def test_a_customer_stored_under_such_an_id_before_is_still_updated(db_url: str, tmp_path: Path) -> None:
    inserted(db_url, Customer(external_id="客户1", name="旧", created_at=utcnow(), updated_at=utcnow()))
    assert _rejected(db_url, "customers", tmp_path / "c.csv", "external_id,name\n客户1,新\n") == []
    assert rows(db_url, CUSTOMER, "external_id", "name") == [("客户1", "新")]
