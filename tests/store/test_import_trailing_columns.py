"""A spreadsheet's CSV ends its header in empty names when a cell to the right was ever used
(``external_id,name,phone,,,``), and every row in as many empty cells. Those columns hold nothing:
the file imports; a row with a value under a nameless column is a bad row of its own. A header past
any use (a million columns) is refused in a message a person can read."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.bulk_writer import CUSTOMER
from store.importing import ImportFileError, import_csv
from tests.db_support import rows
from tests.store.test_import import run

# As Excel on a Chinese Windows saves it: GBK, CRLF, the header's case and spaces its own.
EXCEL = (
    "External_ID , Name ,Phone,,,\r\n"
    "E1,张三,+86 138 0013 8000,,,\r\n"
    "E2,李四,13800138001,,备注,\r\n"
    "E3,王五,8613800138002,,,\r\n"
)


def _stored(url: str) -> dict[object, tuple[object, ...]]:
    return {r[0]: r[1:] for r in rows(url, CUSTOMER, "external_id", "name", "phone")}


def test_nameless_empty_columns_at_the_end_of_the_header_are_no_fault(migrated_any_db: str, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_bytes(EXCEL.encode("gbk"))

    result = run("import", "customers", str(source), "--encoding", "gbk")

    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"{source}:3: field 5 has a value, but the header gives its column no name"]
    assert f"{source}: 3 rows; imported 2 new, updated 0, unchanged 0, rejected 1" in result.stdout
    assert _stored(migrated_any_db) == {"E1": ("张三", "+8613800138000"), "E3": ("王五", "+8613800138002")}

    # The rejects file has the named columns, in the file's encoding; corrected, it imports as it is.
    rejects = tmp_path / "customers.rejects.csv"
    lines = rejects.read_bytes().decode("gbk").splitlines()
    assert lines == ["External_ID , Name ,Phone,line,reason",
                     "E2,李四,13800138001,3,\"field 5 has a value, but the header gives its column no name\""]
    rejects.write_bytes("\r\n".join([lines[0], "E2,李四,13800138001,3,"]).encode("gbk"))
    again = run("import", "customers", str(rejects), "--encoding", "gbk")
    assert again.exit_code == 0, again.output
    assert _stored(migrated_any_db)["E2"] == ("李四", "+8613800138001")


def test_a_row_with_fewer_cells_than_the_named_columns_is_still_a_bad_row(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("external_id,name,phone,,\nA1,Ann,13800138000,,\nA2\nA3,Bo,13800138003,,,x\n",
                      encoding="utf-8")
    report = import_csv("customers", source, db_url)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "1 fields where the header has 3"), (4, "6 fields where the header has 5")]
    assert set(_stored(db_url)) == {"A1"}


def test_a_million_empty_columns_cost_the_import_nothing(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "wide.csv"
    source.write_text("external_id,name" + "," * 1_000_000 + "\n" + "W1,Wide" + "," * 1_000_000 + "\n",
                      encoding="utf-8")
    report = import_csv("customers", source, db_url)
    assert (report.inserted, report.rejected) == (1, [])
    assert _stored(db_url) == {"W1": ("Wide", None)}


def test_a_header_of_a_hundred_thousand_unknown_columns_is_refused_in_a_line(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "unknown.csv"
    source.write_text("external_id,name," + ",".join(f"c{i}" for i in range(100_000)) + "\nU1,Un\n",
                      encoding="utf-8")
    with pytest.raises(ImportFileError) as refused:
        import_csv("customers", source, db_url)
    message = str(refused.value)
    assert message.startswith("unknown column 'c0'; unknown column 'c1';")
    assert message.endswith("; and 99,990 more problems with the header")
    assert len(message) < 400
    assert _stored(db_url) == {}


def test_a_nameless_column_between_named_ones_refuses_the_file_naming_it(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "gap.csv"
    source.write_text("external_id,,name\nG1,,Gap\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"^column 2 has no name$"):
        import_csv("customers", source, db_url)
