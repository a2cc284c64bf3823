"""A rejected row goes to the rejects file and, corrected there and imported again as docs/import.md
says, is stored exactly as first given, whatever its cells hold; the rejects file still shows a
spreadsheet no formula (store.csv_cells)."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from store.bulk_writer import CUSTOMER
from store.csv_cells import safe_cell
from store.importing import import_csv
from tests.db_support import rows

_ids = itertools.count()

# What a name cell can hold and the import keeps as it is: no control characters (refused), no
# spaces at the ends (trimmed), at most 128 characters.
names = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40,
).filter(lambda s: s == s.strip() and bool(s))


def _import(url: str, path: Path) -> int:
    return import_csv("customers", path, url).exit_code


def _correct(rejects: Path) -> Path:
    """What ops do: set the wrong tier right in the rejects file, save it, import it as it is."""
    with rejects.open(encoding="utf-8", newline="") as handle:
        table = list(csv.reader(handle))
    tier = table[0].index("tier")
    for row in table[1:]:
        row[tier] = "gold"
    with rejects.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(table)
    return rejects


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, branch=names)
@example(name="+SUM(1;2)", branch="=HYPERLINK(\"x\")")
@example(name="'+SUM(1;2)", branch="''")
@example(name="'", branch="@me")
@example(name="-12.5", branch="+8613812345678")
def test_a_corrected_rejects_file_stores_each_value_as_first_given(
    name: str, branch: str, db_url: str, tmp_path: Path,
) -> None:
    external_id = f"R{next(_ids)}"
    source = tmp_path / f"{external_id}.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["external_id", "name", "branch", "tier"],
                                      [external_id, name, branch, "golden"]])
    assert _import(db_url, source) == 1
    rejects = source.with_name(f"{external_id}.rejects.csv")
    with rejects.open(encoding="utf-8", newline="") as handle:
        [header, written] = list(csv.reader(handle))
    for given_value, cell in ((name, written[header.index("name")]), (branch, written[header.index("branch")])):
        # Nothing in the file is a formula to a spreadsheet: the exports' own rule finds nothing to escape.
        assert safe_cell(cell) == cell
        assert cell in (given_value, "'" + given_value)
    assert _import(db_url, _correct(rejects)) == 0
    stored = {r[0]: r[1:] for r in rows(db_url, CUSTOMER, "external_id", "name", "branch", "tier")}
    assert stored[external_id] == (name, branch, "gold")
