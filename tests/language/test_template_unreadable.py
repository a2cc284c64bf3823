"""A template file that cannot be read as text (saved as GBK, far too large) is a problem at its file,
at the first byte that is not UTF-8: the journeys sending it are rejected (the last good version
stays in force) and the rest are validated, instead of every reader ending in a UnicodeDecodeError."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.language.validation import validate
from tests.language.test_template_compile_errors import OTHER, PROBE, _template


@pytest.mark.parametrize("spoil", ["gbk", "huge"])
def test_an_unreadable_template_rejects_the_journeys_sending_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                spoil: str) -> None:
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "cache"))
    templates, journeys = tmp_path / "templates", tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "zz-t.yaml").write_text(PROBE, encoding="utf-8")
    (journeys / "other.yaml").write_text(OTHER, encoding="utf-8")
    _template(templates, "msg", "【安心保险】{{ customer.name }}")
    _template(templates, "zz_t", "【安心保险】{{ customer.name }}")
    spoilt = templates / "zz_t" / "sms.zh-CN.j2"
    if spoil == "gbk":
        spoilt.write_bytes("【安心保险】\n您好 {{ customer.name }}".encode("gbk"))
    else:
        spoilt.write_text("【安心保险】" + "x" * (300 * 1024), encoding="utf-8")
    report = validate([journeys], templates)
    at = [(p.line, p.column, p.message) for p in report.problems if p.path.endswith("zz_t/sms.zh-CN.j2")]
    if spoil == "gbk":
        assert at == [(1, 1, "not UTF-8 text: byte 0xa1 (invalid start byte); save the file as UTF-8")]
    else:
        assert at == [(1, 1, "file larger than 256 KB")]
    assert [j.id for j in report.journeys] == ["other"]
    assert [Path(f).name for f in report.rejected_files] == ["zz-t.yaml"]
