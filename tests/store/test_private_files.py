"""A rejects file or an export written over a file already there is owner-only afterwards, as a new one is.

``os.open``'s mode is applied only when it creates the file: last night's rejects file left readable
by everyone (copied, restored, made by an older version) kept that mode while the import wrote
tonight's bad rows, with their names and phones, into it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from store.export import export_customers, temporary_name
from store.importing import import_csv

pytestmark = pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX file modes")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_rejects_file_already_there_is_made_owner_only(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text("external_id,name,phone\nC1,张三,not a phone\n", encoding="utf-8")
    rejects = tmp_path / "customers.rejects.csv"
    rejects.write_text("old\n", encoding="utf-8")
    rejects.chmod(0o644)
    report = import_csv("customers", source, db_url, rejects_path=rejects)
    assert len(report.rejected) == 1 and "张三" in rejects.read_text(encoding="utf-8")
    assert _mode(rejects) == 0o600


def test_an_export_over_a_leftover_temporary_is_owner_only(db_url: str, tmp_path: Path) -> None:
    import_csv("customers", _customers(tmp_path), db_url)
    out = tmp_path / "book.csv"
    leftover = temporary_name(out)  # a run killed before its rename left it, readable by all
    leftover.write_text("", encoding="utf-8")
    leftover.chmod(0o644)
    export_customers(db_url, out, unmasked=True, actor="dpo")
    assert "+8613812345678" in out.read_text(encoding="utf-8")
    assert _mode(out) == 0o600


def _customers(folder: Path) -> Path:
    source = folder / "in.csv"
    source.write_text("external_id,name,phone\nC1,张三,+8613812345678\n", encoding="utf-8")
    return source
