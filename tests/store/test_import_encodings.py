"""``journeys import --encoding``: a codec that is not a text encoding (rot13, base64, hex, zlib) is
refused in one line naming the option, with exit 2 and nothing imported, like an unknown one, not a
LookupError traceback nor a fault of the file;
a text encoding other than UTF-8 reads the file, and a byte order mark is read as none, whatever the
encoding named."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from store.bulk_writer import CUSTOMER
from tests.db_support import count, rows


@pytest.mark.parametrize(("encoding", "message"), [
    ("rot13", "'rot13' is not a text encoding (e.g. utf-8, gbk, gb18030, utf-16)"),
    ("base64", "'base64' is not a text encoding (e.g. utf-8, gbk, gb18030, utf-16)"),
    ("zlib", "'zlib' is not a text encoding (e.g. utf-8, gbk, gb18030, utf-16)"),
    ("nonsense", "unknown encoding 'nonsense' (e.g. utf-8, gbk, gb18030, utf-16)"),
])
def test_an_encoding_that_reads_no_text_is_refused(db_url: str, tmp_path: Path, encoding: str, message: str) -> None:
    source = tmp_path / "c.csv"
    source.write_text("external_id,name\nC1,张三\n", encoding="utf-8")
    result = CliRunner().invoke(build_app(), ["import", "customers", str(source), "--encoding", encoding])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"--encoding: {message}"]
    assert count(db_url, CUSTOMER) == 0


def test_a_utf16_file_without_its_byte_order_mark_is_refused_as_not_that_text(db_url: str, tmp_path: Path) -> None:
    """Python's UTF-16 decoder says so with a UnicodeError that is no UnicodeDecodeError: it was a traceback."""
    source = tmp_path / "c.csv"
    source.write_text("external_id,name\nC1,Ann\n", encoding="utf-8")
    result = CliRunner().invoke(build_app(), ["import", "customers", str(source), "--encoding", "utf-16"])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith(f"{source}: not utf-16 text (near line 1)"), result.stderr
    assert count(db_url, CUSTOMER) == 0


def test_utf16_with_its_encoding_is_read(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("external_id,name\nC1,张三\n", encoding="utf-16")
    result = CliRunner().invoke(build_app(), ["import", "customers", str(source), "--encoding", "utf-16"])
    assert result.exit_code == 0, result.output
    assert count(db_url, CUSTOMER) == 1


@pytest.mark.parametrize(("encoding", "written"), [("utf-8", "utf-8"), ("utf-8-sig", "utf-8"),
                                                  ("gb18030", "gb18030"), ("utf-16", "utf-16-le")])
def test_a_byte_order_mark_is_no_part_of_the_header_whatever_the_encoding(db_url: str, tmp_path: Path,
                                                                          encoding: str, written: str) -> None:
    source = tmp_path / "c.csv"
    # As a spreadsheet saves "CSV UTF-8": a byte order mark first; one row bad, so a rejects file is written.
    source.write_bytes("\ufeffexternal_id,name\nC1,张三\nC2,\n".encode(written))
    result = CliRunner().invoke(build_app(), ["import", "customers", str(source), "--encoding", encoding])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [f"{source}:3: name is empty"]
    assert count(db_url, CUSTOMER) == 1
    # The rejects file is in the file's encoding, with the mark the file had (test_import_rejects_encoding):
    # read by its mark, its header is the columns alone.
    read_as = {"utf-8": "utf-8-sig", "utf-8-sig": "utf-8-sig"}.get(encoding, encoding)
    assert (tmp_path / "c.rejects.csv").read_text(read_as).splitlines()[0] == "external_id,name,line,reason"


@pytest.mark.parametrize(("written", "suggested"), [("utf-16", "utf-16"), ("utf-16-be", "utf-16"), ("gbk", "gbk")])
def test_a_file_that_is_not_utf8_is_refused_with_the_encoding_to_pass(db_url: str, tmp_path: Path, written: str,
                                                                      suggested: str) -> None:
    source = tmp_path / "c.csv"
    mark = "\ufeff" if written == "utf-16-be" else ""  # "utf-16" writes its own
    source.write_bytes(f"{mark}external_id,name\nC1,张三\n".encode(written))
    result = CliRunner().invoke(build_app(), ["import", "customers", str(source)])
    assert result.exit_code == 2
    # One line (docs/cli.md): what is wrong, what to do, and that nothing went in.
    assert result.stderr.splitlines() == [
        f"{source}: not utf-8-sig text (near line 1); save the file as UTF-8 CSV or pass --encoding {suggested}; "
        "nothing imported"]
    assert count(db_url, CUSTOMER) == 0
    assert CliRunner().invoke(build_app(), ["import", "customers", str(source), "--encoding", suggested]).exit_code == 0
    assert count(db_url, CUSTOMER) == 1


NAMES = ("张伟", "王芳", "刘洋", "陈静", "赵敏", "黄勇")


@pytest.mark.parametrize("mark", ["", "\ufeff"])
@pytest.mark.parametrize("encoding", ["gbk", "gb18030"])
def test_a_utf8_file_is_not_read_garbled_as_gbk(db_url: str, tmp_path: Path, mark: str, encoding: str) -> None:
    """GBK reads UTF-8 Chinese without an error, as other characters: these names went in as 寮犱紵, 鐜嬭姵, …"""
    book = "external_id,name\n" + "".join(f"C{i},{name}\n" for i, name in enumerate(NAMES))
    source = tmp_path / "c.csv"
    source.write_bytes((mark + book).encode("utf-8"))
    result = CliRunner().invoke(build_app(), ["import", "customers", str(source), "--encoding", encoding])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"{source}: the file is UTF-8 text, not {encoding}: read as {encoding}, its Chinese would be stored garbled "
        "(张伟 as 寮犱紵); leave out --encoding; nothing imported"]
    assert count(db_url, CUSTOMER) == 0
    # The same book saved in GBK is read in it.
    source.write_bytes(book.encode("gbk"))
    assert CliRunner().invoke(build_app(), ["import", "customers", str(source), "--encoding", encoding]).exit_code == 0
    assert [name for (name,) in rows(db_url, CUSTOMER, "name")] == sorted(NAMES)
