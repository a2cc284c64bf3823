"""Fuzzing the CSV importer: random files mixing good and bad rows (and blank lines, quoted
multi-line names, which a name may not hold and which move every later row's line, short rows,
repeated ids) across chunk boundaries. Every bad row is reported
with the line it starts on, every good row is imported, and nothing else changes."""

from __future__ import annotations

import csv
import io
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from store.db import make_engine
from store.importing import import_csv

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADER = ["external_id", "name", "phone", "email", "birthday", "tier"]
GOOD_KINDS = ["good", "good_minimal"]
BAD_KINDS = ["bad_phone", "bad_email", "empty_name", "bad_birthday", "future_birthday", "bad_tier", "short_row",
             "long_row", "repeat_id", "long_name", "multiline_name"]
stats: Counter[str] = Counter()
_file_numbers = itertools.count()


@dataclass
class Planned:
    kind: str
    fields: list[str]
    external_id: str


# Kinds that differ from a good row in one field: kind -> (index in HEADER, value).
ONE_BAD_FIELD: dict[str, tuple[int, str]] = {
    "bad_phone": (2, "12345"),
    "bad_email": (3, "w@@example"),
    "empty_name": (1, "  "),
    "bad_birthday": (4, "1980-02-30"),
    "future_birthday": (4, "2999-01-01"),
    "bad_tier": (5, "bronze"),
    "long_name": (1, "名" * 129),
}


def _row(kind: str, ext: str, n: int, earlier_good: list[str]) -> list[str]:
    good = [ext, f"王{n}", f"+86139{n % 100_000_000:08d}", f"w{n}@example.com", "1980-02-29", "gold"]
    if kind in ONE_BAD_FIELD:
        index, value = ONE_BAD_FIELD[kind]
        good[index] = value
    elif kind == "multiline_name":
        good[1] = f"王\n{n}"
    elif kind == "good_minimal":
        good[2:] = ["", "", "", ""]
    elif kind == "short_row":
        good = good[:3]
    elif kind == "long_row":
        good = [*good, "extra"]
    elif kind == "repeat_id":
        good[0] = earlier_good[n % len(earlier_good)]
    return good


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print(f"\nimport fuzz: {stats['files']} files, {stats['rows']} rows, {stats['good']} imported, "
          f"{stats['bad']} rejected at their exact lines, {stats['blank']} blank lines skipped, 0 lost")


@FUZZ
@given(kinds=st.lists(st.sampled_from(GOOD_KINDS + BAD_KINDS + ["blank"]), min_size=1, max_size=30),
       chunk=st.integers(1, 7))
def test_good_rows_imported_bad_rows_reported_at_their_line(db_url: str, tmp_path: Path, kinds: list[str],
                                                            chunk: int) -> None:
    prefix = f"F{next(_file_numbers):05d}-"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    line = 2
    planned: list[tuple[int, Planned]] = []
    good_ids: list[str] = []
    for n, kind in enumerate(kinds):
        if kind == "blank":
            buffer.write("\n")
            line += 1
            stats["blank"] += 1
            continue
        if kind == "repeat_id" and not good_ids:
            kind = "good"
        fields = _row(kind, f"{prefix}{n}", n, good_ids)
        writer.writerow(fields)
        planned.append((line, Planned(kind, fields, fields[0])))
        if kind in GOOD_KINDS:
            good_ids.append(fields[0])
        line += 1 + sum(f.count("\n") for f in fields)
    path = tmp_path / f"{prefix}customers.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")

    report = import_csv("customers", path, db_url, tmp_path / f"{prefix}rejects.csv", chunk_size=chunk)

    expected_bad = [ln for ln, p in planned if p.kind not in GOOD_KINDS]
    assert [r.line for r in report.rejected] == expected_bad, [(r.line, r.reason) for r in report.rejected]
    assert all(r.reason for r in report.rejected)
    assert report.rows == len(planned)
    assert (report.inserted, report.updated) == (len(good_ids), 0)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        query = text("SELECT external_id, name FROM customer WHERE external_id LIKE :p")
        stored: dict[str, str] = dict(conn.execute(query, {"p": prefix + "%"}).all())
    engine.dispose()
    names = {p.external_id: p.fields[1] for _, p in planned if p.kind in GOOD_KINDS}
    assert stored == names  # every good row, as written, and nothing from a bad one
    if expected_bad:
        with (tmp_path / f"{prefix}rejects.csv").open(newline="", encoding="utf-8") as handle:
            rejects = list(csv.DictReader(handle))
        assert [int(r["line"]) for r in rejects] == expected_bad
    stats["files"] += 1
    stats["rows"] += len(planned)
    stats["good"] += len(good_ids)
    stats["bad"] += len(expected_bad)
