"""Amounts (a policy's premium, a claim's amount, a tier score) are at most ``MAX_AMOUNT``, by the CSV
import and the API alike (both read them with ``store.importing.fields.amount``).

``1e308`` was taken: two such premiums under one customer made PostgreSQL's SUM overflow, and
``journeys retier`` stopped with a traceback for every customer of the chunk. The row is refused
now, named by its line, and re-scoring runs for the rest.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from store.bulk_writer import POLICY
from store.importing import import_csv
from store.importing.fields import MAX_AMOUNT
from tests.db_support import rows

CUSTOMERS = "external_id,name,phone\nA1,Ann,13812345678\nA2,Bob,13812345679\n"
POLICIES = ("external_id,customer_external_id,product_line,annual_premium,start_date,expiry_date\n"
            "P1,A1,health,{big},2026-01-01,2027-01-01\n"
            "P2,A1,life,{big},2026-01-01,2027-01-01\n"
            "P3,A2,life,5000,2026-01-01,2027-01-01\n"
            "P4,A2,motor,1000000000000,2026-01-01,2027-01-01\n")


@pytest.mark.parametrize("big", ["1e308", "1000000000000.01", "179769313486231570000000000000000000000000"])
def test_an_amount_past_the_bound_refuses_its_row_and_retier_runs(migrated_any_db: str, tmp_path: Path,
                                                                   big: str) -> None:
    (tmp_path / "c.csv").write_text(CUSTOMERS, "utf-8")
    (tmp_path / "p.csv").write_text(POLICIES.format(big=big), "utf-8")
    assert import_csv("customers", tmp_path / "c.csv", migrated_any_db).rejected == []
    report = import_csv("policies", tmp_path / "p.csv", migrated_any_db)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (line, f"annual_premium {big[:39] + '…' if len(big) > 40 else big} is over {MAX_AMOUNT:,}") for line in (2, 3)]
    assert rows(migrated_any_db, POLICY, "external_id", "annual_premium") == [("P3", 5000.0), ("P4", 1e12)]
    result = CliRunner().invoke(build_app(), ["retier"], env={"JOURNEYS_DATABASE_URL": migrated_any_db})
    assert result.exit_code == 0, result.output
