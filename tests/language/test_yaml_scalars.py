"""Every scalar a journey file can hold is read, or refused as a problem at its line: nothing a
scalar holds (an impossible date, a 5,000-digit number, a tag, a control character) may escape
the loader as an exception, and a file that holds one is rejected whole while the others plan."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language.validation import validate_journey_file
from engine.language.yaml_lines import YamlError, load_located
from tests.plan_support import Book, send_journey

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (ROOT / "journeys" / "silver-weekly-push.yaml").read_text(encoding="utf-8")

# What a plain or tagged scalar may be made of: enough of YAML 1.1's number, date and time forms to
# reach every implicit resolver and every explicit core tag with values that do not fit them.
PIECES = st.sampled_from(["0", "1", "9", "29", "30", "31", "2026", "-", "+", ":", ".", "T", "t", " ", "e", "E",
                          "_", "x", "0x", "0o", "0b", "ff", "inf", "nan", "Z", "25", "60", "99" * 20,
                          "9" * 5000, "true", "maybe", "~", "null"])
TAGS = st.sampled_from(["", "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!timestamp ", "!!binary ",
                        "!!set ", "!!python/object:os.system ", "!local "])


@settings(max_examples=400, deadline=None)
@given(TAGS, st.lists(PIECES, min_size=1, max_size=8).map("".join))
def test_any_scalar_is_read_or_refused_at_its_line(tag: str, scalar: str) -> None:
    text = f"id: x\nname: {tag}{scalar}\n"
    try:
        load_located(text)
    except YamlError as exc:
        assert exc.position.line in (2, 3), exc.position  # the value's line (or the end, for a bad block)
        assert exc.message


PROBES: dict[str, tuple[str, str, str]] = {
    "5,000-digit priority": ("priority: 40", "priority: " + "9" * 5000, "a number of 5,000 characters"),
    "binary name": ("name: 白银每周专属推送 / Silver weekly push", "name: !!binary aGVsbG8=", "tag !!binary"),
    "set": ("tiers: [silver]", "tiers: !!set {silver}", "tag !!set"),
    "explicit timestamp": ("name: 白银每周专属推送 / Silver weekly push", "name: !!timestamp 2026-01-01",
                           "tag !!timestamp"),
    "bad explicit int": ("priority: 40", "priority: !!int forty", "cannot read 'forty' as !!int"),
    "NUL by escape": ("name: 白银每周专属推送 / Silver weekly push", 'name: "a\\0b"', "U+0000"),
    "bidi override": ("name: 白银每周专属推送 / Silver weekly push", "name: abc\u202edef", "U+202E"),
    "bidi by escape": ("name: 白银每周专属推送 / Silver weekly push", 'name: "abc\\u2066def"', "U+2066"),
}


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_questionable_scalar_rejects_the_file_at_its_line(probe: str, tmp_path: Path) -> None:
    old, new, words = PROBES[probe]
    assert old in SHIPPED
    text = SHIPPED.replace(old, new, 1)
    path = tmp_path / "silver-weekly-push.yaml"
    path.write_text(text, encoding="utf-8")
    loaded, problems = validate_journey_file(path, ROOT / "templates")
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if new in row)
    assert loaded is None and problems, probe
    assert [p.line for p in problems] == [line], problems
    assert words in problems[0].message, problems


def test_date_like_text_is_text(tmp_path: Path) -> None:
    """``name: 2026-02-30`` and ``description: 2026-01-01T25:00:00`` are what they say: text."""
    text = re.sub(r"description: >\n(  .*\n)+", "description: 2026-01-01T25:00:00\n", SHIPPED, count=1)
    text = text.replace("name: 白银每周专属推送 / Silver weekly push", "name: 2026-02-30", 1)
    path = tmp_path / "silver-weekly-push.yaml"
    path.write_text(text, encoding="utf-8")
    loaded, problems = validate_journey_file(path, ROOT / "templates")
    assert problems == [] and loaded is not None
    assert (loaded.journey.name, loaded.journey.description) == ("2026-02-30", "2026-01-01T25:00:00")


def test_plan_goes_on_without_the_file_that_holds_a_bad_scalar(sqlite_book: Book) -> None:
    """Before: ``journeys plan`` exited 1 with a ValueError traceback and planned nothing."""
    book = sqlite_book
    book.journey("good", send_journey("good", "Good", '{schedule: {cron: "0 10 * * MON"}}', step="push",
                                      channels="[sms]"))
    book.journey("bad", send_journey("bad", "Bad", '{schedule: {cron: "0 10 * * MON"}}', step="push",
                                     channels="[sms]", priority=int("9" * 50)))
    book.customer()
    result = CliRunner().invoke(build_app(), ["plan", "--from", "2027-03-01T00:00:00+00:00",
                                              "--at", "2027-03-02T00:00:00+00:00", "--json", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert [json.loads(line)["journey"] for line in result.stdout.splitlines()] == ["good"]
    checked = CliRunner().invoke(build_app(), ["validate", str(book.journeys)])
    assert checked.exit_code == 1
    assert f"{book.journeys / 'bad.yaml'}:4:11: YAML value: a number of 50 characters" in checked.output
