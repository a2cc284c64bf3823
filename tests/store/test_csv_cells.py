"""CSV files people open in a spreadsheet never carry a live formula (CSV injection)."""

from __future__ import annotations

import csv
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session

from store.clock import utcnow
from store.csv_cells import safe_cell
from store.db import make_engine
from store.export import export_customers
from store.models import Customer

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@given(st.text(max_size=40))
def test_no_cell_starts_a_formula_and_other_text_is_unchanged(text: str) -> None:
    cell = safe_cell(text)
    if cell.startswith(FORMULA_START):
        # Only plain numbers (phones, amounts) may keep a sign in front: no letters, no operators.
        assert set(cell) <= set("+-0123456789 ().")
    assert cell in (text, "'" + text)
    if not text.startswith(FORMULA_START):
        assert cell == text


def test_export_neutralises_formulas_and_keeps_phone_numbers(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    with Session(engine) as session:
        session.add(Customer(external_id="=HYPERLINK(\"http://x.invalid\",\"open\")", name="@SUM(1+1)",
                             phone="+8613812345678", branch="+cmd|' /C calc'!A0", tier="gold",
                             created_at=utcnow(), updated_at=utcnow()))
        session.commit()
    engine.dispose()
    out = tmp_path / "out.csv"
    export_customers(db_url, out, unmasked=True, actor="dpo")
    [row] = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert row["external_id"] == "'=HYPERLINK(\"http://x.invalid\",\"open\")"
    assert row["name"] == "'@SUM(1+1)" and row["branch"] == "'+cmd|' /C calc'!A0"
    assert row["phone"] == "+8613812345678"
