"""The rejects file of an import is written in the encoding the file was read in, so the rows of a
GBK file (Excel's CSV on a Chinese Windows) keep their names in the spreadsheet, and the corrected
file is imported again by the same command, as docs/import.md says. A file that does not decode is
told the encoding it reads in, never the ``--encoding`` just given."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from store.bulk_writer import CUSTOMER
from tests.db_support import count, rows

# Three characters: their UTF-8 bytes are no GBK text, so a GBK read of them fails (two would pass).
NAME = "王小明"


def _import(path: Path, *options: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(build_app(), ["import", "customers", str(path), *options])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stderr.splitlines()


def _correct(rejects: Path, encoding: str) -> None:
    """What ops do in the spreadsheet: set the wrong tier right and save the file as it came."""
    rejects.write_bytes(rejects.read_bytes().replace("bronze".encode(encoding), "gold".encode(encoding)))


def test_the_rejects_of_a_gbk_file_are_gbk_and_import_again_with_the_same_command(db_url: str,
                                                                                 tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_bytes(f"external_id,name,tier\r\nC1,张三,gold\r\nC2,{NAME},bronze\r\n".encode("gbk"))
    assert _import(source, "--encoding", "gbk") == (1, [f"{source}:3: tier 'bronze' is not one of diamond, "
                                                        "platinum, gold, silver, potential"])
    rejects = tmp_path / "customers.rejects.csv"
    assert rejects.read_bytes().decode("gbk").splitlines()[1].startswith(f"C2,{NAME},bronze,3,")
    _correct(rejects, "gbk")
    assert _import(rejects, "--encoding", "gbk") == (0, [])
    assert rows(db_url, CUSTOMER, "external_id", "name", "tier") == [("C1", "张三", "gold"), ("C2", NAME, "gold")]


@pytest.mark.parametrize("mark", [codecs.BOM_UTF8, b""], ids=["excel-csv-utf8", "plain-utf8"])
def test_the_rejects_of_a_utf8_file_keep_its_byte_order_mark(db_url: str, tmp_path: Path, mark: bytes) -> None:
    """A spreadsheet reads a CSV file as UTF-8 by its mark; without it, as the system's code page."""
    source = tmp_path / "customers.csv"
    source.write_bytes(mark + f"external_id,name,tier\nC2,{NAME},bronze\n".encode())
    assert _import(source)[0] == 1
    written = (tmp_path / "customers.rejects.csv").read_bytes()
    assert written.startswith(mark + b"external_id,name,tier,line,reason")
    assert written.count(codecs.BOM_UTF8) == len(mark) // 3


def test_a_reason_the_encoding_has_no_characters_for_is_written_all_the_same(db_url: str, tmp_path: Path) -> None:
    """A consent's reason names 是/否, which latin-1 cannot hold: the row is still written, not a traceback."""
    source = tmp_path / "customers.csv"
    source.write_bytes("external_id,name,consent_sms\nC1,José,maybe\n".encode("latin-1"))
    assert _import(source, "--encoding", "latin-1")[0] == 1
    line = (tmp_path / "customers.rejects.csv").read_bytes().decode("latin-1").splitlines()[1]
    assert line == "C1,José,maybe,2,\"consent_sms 'maybe' is not a consent value (yes/no, true/false, 1/0, ?/?)\""


@pytest.mark.parametrize(("written", "given", "advice"), [
    # A UTF-8 file (a rejects file of an earlier run, an export) with --encoding gbk was told to pass
    # --encoding gbk, the option on its command line.
    ("utf-8", "gbk", "it reads as UTF-8: leave out --encoding"),
    ("utf-8", "utf-16", "it reads as UTF-8: leave out --encoding"),
    ("gbk", "utf-16", "save the file as UTF-8 CSV or pass --encoding gbk"),
    ("gbk", "utf-8", "save the file as UTF-8 CSV or pass --encoding gbk"),
])
def test_a_file_that_does_not_decode_is_told_the_encoding_it_reads_in(db_url: str, tmp_path: Path, written: str,
                                                                     given: str, advice: str) -> None:
    source = tmp_path / "customers.csv"
    source.write_bytes(f"external_id,name\nC1,{NAME}\n".encode(written))
    code, stderr = _import(source, "--encoding", given)
    assert code == 2
    assert stderr == [f"{source}: not {given} text (near line 1); {advice}; nothing imported"]
    assert count(db_url, CUSTOMER) == 0
