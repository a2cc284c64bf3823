"""What the import bounds, row by row: a cell too long for any column, control characters, too many or
too large ``attr.*`` values, a phone with an extension. Each refuses its own row, named by its line;
the good rows around it still go in (only a header past the bounds refuses the file)."""

from __future__ import annotations

import csv
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.bulk_writer import CUSTOMER
from store.importing import ImportFileError, ImportReport, import_csv
from store.importing import fields as f
from store.importing.records import MAX_LINE
from tests.db_support import rows

CONTROL = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]


def _write(path: Path, table: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(table)
    return path


def _import(url: str, path: Path) -> ImportReport:
    return import_csv("customers", path, url)


def _stored(url: str) -> dict[str, tuple[object, ...]]:
    return {r[0]: r[1:] for r in rows(url, CUSTOMER, "external_id", "name", "phone", "attributes")}


def _between_good_rows(url: str, tmp_path: Path, header: list[str], bad: list[str]) -> str:
    """Imports good, bad, good: the bad row alone is refused, on line 3; returns its reason."""
    good = [[f"G{n}", f"Good {n}", *("" for _ in header[2:])] for n in (1, 2)]
    report = _import(url, _write(tmp_path / "c.csv", [header, good[0], bad, good[1]]))
    assert [r.line for r in report.rejected] == [3], report.rejected
    assert report.imported == 2 and {"G1", "G2"} <= set(_stored(url))
    assert bad[0] not in _stored(url)
    return report.rejected[0].reason


def test_a_cell_past_the_csv_modules_limit_refuses_its_row_not_the_file(db_url: str, tmp_path: Path) -> None:
    reason = _between_good_rows(db_url, tmp_path, ["external_id", "name"], ["B1", "x" * 131_073])
    assert reason == "name is longer than 10,000 characters"


def test_a_large_attribute_value_is_refused(db_url: str, tmp_path: Path) -> None:
    header = ["external_id", "name", "attr.note"]
    assert _between_good_rows(db_url, tmp_path, header, ["B1", "Bad", "n" * 100_000]) == (
        "attr.note is longer than 10,000 characters")
    assert _between_good_rows(db_url, tmp_path, header, ["B2", "Bad", "n" * (f.MAX_ATTRIBUTE_VALUE + 1)]) == (
        f"attr.note is longer than {f.MAX_ATTRIBUTE_VALUE} characters")
    # A note may run over lines; at the bound it is taken.
    fine = "line one\nline two\t" + "n" * (f.MAX_ATTRIBUTE_VALUE - 18)
    report = _import(db_url, _write(tmp_path / "ok.csv", [header, ["N1", "Note", fine]]))
    assert report.rejected == [] and _stored(db_url)["N1"][2] == {"note": fine}


def test_too_many_attribute_columns_refuse_the_file(db_url: str, tmp_path: Path) -> None:
    header = ["external_id", "name", *(f"attr.a{i}" for i in range(5000))]
    path = _write(tmp_path / "wide.csv", [header, ["W1", "Wide", *("1" for _ in range(5000))]])
    with pytest.raises(ImportFileError, match=r"5000 attr\.\* columns; a customer has at most 100 attributes"):
        _import(db_url, path)
    assert _stored(db_url) == {}
    long_name = ["external_id", "name", "attr." + "k" * 65]
    with pytest.raises(ImportFileError, match="an attribute name has at most 64 characters"):
        _import(db_url, _write(tmp_path / "long.csv", [long_name, ["L1", "Long", "1"]]))


def test_attributes_from_several_files_stay_within_the_bound(db_url: str, tmp_path: Path) -> None:
    first = ["external_id", "name", *(f"attr.a{i}" for i in range(60))]
    assert _import(db_url, _write(tmp_path / "1.csv", [first, ["A1", "Ann", *("1" for _ in range(60))]])).rejected == []
    second = ["external_id", "name", *(f"attr.b{i}" for i in range(60))]
    report = _import(db_url, _write(tmp_path / "2.csv", [second, ["A1", "Ann", *("2" for _ in range(60))],
                                                         ["A2", "Bo", *("2" for _ in range(60))]]))
    assert [(r.line, r.reason) for r in report.rejected] == [(2, "the customer would have 120 attributes; at most 100")]
    assert len(_stored(db_url)["A1"][2]) == 60 and len(_stored(db_url)["A2"][2]) == 60


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(control=st.sampled_from(CONTROL), at=st.integers(min_value=1, max_value=3),  # inside: the ends are trimmed
       column=st.sampled_from(["external_id", "name", "branch", "tier"]))
def test_a_control_character_in_any_cell_refuses_the_row(
    control: str, at: int, column: str, db_url: str, tmp_path: Path,
) -> None:
    header = ["external_id", "name", "branch", "tier"]
    bad = {"external_id": "BAD1", "name": "Bad Name", "branch": "Shanghai", "tier": "gold"}
    bad[column] = bad[column][:at] + control + bad[column][at:]
    reason = _between_good_rows(db_url, tmp_path, header, [bad[h] for h in header])
    if column == "tier" and control in "\t\n\r":  # a line break or tab is not refused everywhere,
        assert reason.startswith("tier "), reason  # but no tier has one
    else:
        assert reason.startswith(f"{column} contains a control character (U+{ord(control):04X}"), reason
    assert "Bad" not in reason.replace("BAD1", "")  # the value itself is never shown


@pytest.mark.parametrize("phone", ["+86 138-1234-5625 ext 9", "13812345625 x9", "13812345625#9",
                                   "13812345625;ext=9"])
def test_a_phone_with_an_extension_is_refused(phone: str, db_url: str, tmp_path: Path) -> None:
    reason = _between_good_rows(db_url, tmp_path, ["external_id", "name", "phone"], ["P1", "Pat", phone])
    assert reason == "phone has an extension, which no SMS reaches (138****5625)"
    report = _import(db_url, _write(tmp_path / "ok.csv", [["external_id", "name", "phone"],
                                                          ["P2", "Pat", "+86 138-1234-5625"]]))
    assert report.rejected == [] and _stored(db_url)["P2"][1] == "+8613812345625"


@pytest.mark.parametrize(("phone", "reason"), [
    ("abc", "phone cannot be read as a number (not a number)"),
    ("12", "phone is not a valid number (**)"),
    ("1.38001E+10", "phone is in a spreadsheet's scientific notation (like 1.38E+10), which has lost its last "
                    "digits: format the column as text in the source and save the file again"),
])
def test_a_phone_that_is_no_number_is_refused_in_words(phone: str, reason: str, db_url: str, tmp_path: Path) -> None:
    assert _between_good_rows(db_url, tmp_path, ["external_id", "name", "phone"], ["P1", "Pat", phone]) == reason


def test_the_rejects_file_cannot_be_the_file_imported(db_url: str, tmp_path: Path) -> None:
    source = _write(tmp_path / "c.csv", [["external_id", "name", "tier"], ["A1", "Ann", "golden"], ["A2", "Bo", ""]])
    before = source.read_bytes()
    with pytest.raises(ImportFileError, match="the rejects file cannot be the file being imported"):
        import_csv("customers", source, db_url, tmp_path / "." / "c.csv")
    assert source.read_bytes() == before and _stored(db_url) == {}


def test_the_rejects_file_cannot_be_the_file_imported_under_another_name(db_url: str, tmp_path: Path) -> None:
    # A hard link, as a file system that ignores case gives "Customers.csv" for "customers.csv": the
    # rejects file, opened at the first bad row, emptied the file being read and every row after it went.
    table = [["external_id", "name"], ["B1", ""], *([f"G{n}", f"Good {n}"] for n in range(3000))]
    source = _write(tmp_path / "c.csv", table)
    before = source.read_bytes()
    (tmp_path / "same.csv").hardlink_to(source)
    with pytest.raises(ImportFileError, match="the rejects file cannot be the file being imported"):
        import_csv("customers", source, db_url, tmp_path / "same.csv")
    assert source.read_bytes() == before and _stored(db_url) == {}


@pytest.mark.parametrize("ends", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("shape", ["one cell", "a quote opened", "cut between CR and LF"])
def test_a_line_past_the_bound_is_one_bad_row_read_in_bounded_memory(db_url: str, tmp_path: Path, ends: str,
                                                                      shape: str) -> None:
    # 40 MiB on one line: held whole, split and written to the rejects file, it took several times that.
    huge = {"one cell": "x" * (10 * MAX_LINE), "a quote opened": '"' + "y" * (10 * MAX_LINE),
            # The bound falls between the line's CR and LF: the LF is no line of its own.
            "cut between CR and LF": "z" * (MAX_LINE - len("H1,Huge,") - 1)}[shape]
    lines = ["external_id,name,attr.note", "G1,Good 1,", f"H1,Huge,{huge}", "G2,Good 2,", 'G3,Good 3,"two\nlines"',
             "G4,Good 4,"]
    source = tmp_path / "c.csv"
    source.write_text(ends.join(lines) + ends, encoding="utf-8", newline="")
    tracemalloc.start()
    try:
        report = _import(db_url, source)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    reasons = [(r.line, r.reason) for r in report.rejected]
    assert reasons == [(3, f"the line is longer than {MAX_LINE >> 20} MiB; no row is near that long")]
    # The rows after it keep their lines: G3's note runs over two, and a line ends as the file's do.
    assert report.imported == 4 and {"G1", "G2", "G3", "G4"} <= set(_stored(db_url))
    assert _stored(db_url)["G3"][2] == {"note": "two\nlines"}
    assert peak < 12 * MAX_LINE
