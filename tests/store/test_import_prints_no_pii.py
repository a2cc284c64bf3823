"""What ``journeys import`` prints holds no phone number, e-mail address or ID number unmasked and no
customer's name (docs/import.md), also where a value stands in for a column or an id: a file without its
header row (line 1 is a customer) printed each of her values as an unknown column, and a phone number
used as the external id (a small CRM's key) was printed whole in "repeats line 2"."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from engine.cli import build_app
from store.bulk_writer import CUSTOMER
from tests.db_support import count

SECRETS = ("张三", "13812345678", "zhang.san@example.com", "110101199003070038", "13912345678")


def _import(kind: str, path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(build_app(), ["import", kind, str(path)])
    printed = result.output + result.stderr
    for secret in SECRETS:
        assert secret not in printed, printed
    return result.stderr


def test_a_file_without_its_header_row_is_refused_without_showing_its_first_customer(
        db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    stderr = _import("customers", source, "C1,张三,13812345678,zhang.san@example.com,110101199003070038\n"
                                          "C2,李四,13912345678,,\n")
    assert stderr.splitlines() == [
        f"{source}: line 1 names none of the columns of customers (external_id, name, …); the first line must "
        "name the columns: is the file's header row missing?; nothing imported"]
    assert count(db_url, CUSTOMER) == 0


def test_ids_and_columns_that_are_phone_numbers_are_shown_masked(db_url: str, tmp_path: Path) -> None:
    customers = tmp_path / "c.csv"
    stderr = _import("customers", customers, "external_id,name\n13812345678,甲\n13812345678,乙\n")
    assert stderr.splitlines() == [f"{customers}:3: external_id '138****5678' repeats line 2"]
    policies = tmp_path / "p.csv"
    stderr = _import("policies", policies, "external_id,customer_external_id,product_line,annual_premium,start_date,"
                                           "expiry_date\nP1,13912345678,motor,1,2026-01-01,2027-01-01\n")
    assert stderr.splitlines() == [f"{policies}:2: unknown customer external id '139****5678'"]
    # Rejected rows keep their values in the rejects file, which only its owner reads.
    assert "13912345678" in (tmp_path / "p.rejects.csv").read_text(encoding="utf-8")
    wrong = tmp_path / "w.csv"
    assert _import("customers", wrong, "external_id,name,13812345678\nC1,x,y\n").splitlines() == [
        f"{wrong}: unknown column '138****5678'; nothing imported"]
