"""An update step writes one value into a customer attribute, as the import and the API store them:
text, a number, true or false. A list, a mapping, null or NaN was accepted by validate and written
into the customer's attributes, where no export column or condition could read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.language.journey_bounds import ATTRIBUTE_VALUE_MAX
from engine.language.validation import validate_journey_file
from store.importing.fields import MAX_ATTRIBUTE_VALUE

ROOT = Path(__file__).resolve().parents[2]

NOTE = """\
id: note
name: 备注 / Note
category: service
entry:
  schedule: {cron: "0 10 * * MON"}
steps:
  - id: note
    update:
      field: customer.attributes.note
      value: VALUE
"""
VALUE_LINE = 10


def _validated(tmp_path: Path, value: str) -> tuple[object, list[tuple[int, str]]]:
    path = tmp_path / "note.yaml"
    path.write_text(NOTE.replace("VALUE", value), encoding="utf-8")
    loaded, problems = validate_journey_file(path, ROOT / "templates")
    update = None if loaded is None else loaded.journey.steps[0].update
    return (None if update is None else update.value), [(p.line, p.message) for p in problems]


@pytest.mark.parametrize(("value", "words"), [
    ("[gold, silver]", "not a list"),
    ("[]", "not a list"),
    ("{tier: gold}", "not a mapping"),
    ("{}", "not a mapping"),
    ("null", "not null"),
    (".nan", "not nan"),
    (".inf", "not inf"),
    ("x" * (ATTRIBUTE_VALUE_MAX + 1), f"at most {ATTRIBUTE_VALUE_MAX:,} characters"),
])
def test_an_update_of_more_than_one_value_is_refused_at_its_line(value: str, words: str, tmp_path: Path) -> None:
    stored, problems = _validated(tmp_path, value)
    assert stored is None
    assert [line for line, _ in problems] == [VALUE_LINE], problems
    assert words in problems[0][1], problems


@pytest.mark.parametrize(("value", "stored"), [
    ("true", True), ("7", 7), ("-1.5", -1.5), ("sent", "sent"), ('"7"', "7"), ("2026-03-20", "2026-03-20"),
    ("x" * ATTRIBUTE_VALUE_MAX, "x" * ATTRIBUTE_VALUE_MAX),
])
def test_a_single_value_is_kept_as_written(value: str, stored: object, tmp_path: Path) -> None:
    assert _validated(tmp_path, value) == (stored, [])
    assert type(_validated(tmp_path, value)[0]) is type(stored)


def test_the_longest_text_is_the_imports() -> None:
    assert ATTRIBUTE_VALUE_MAX == MAX_ATTRIBUTE_VALUE
