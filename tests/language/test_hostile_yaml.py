"""A journey file is untrusted input: whatever it holds, validation rejects it with ``file:line``
and bounded memory, before building anything costly (aliases, depth, size, node count)."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import pytest

from engine.language.validation import validate_journey_file

ROOT = Path(__file__).resolve().parents[2]
LOCATED = re.compile(r"^(?P<path>[^\n]+\.yaml):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")


def _laughs(levels: int) -> str:
    """The classic "billion laughs": each level is nine aliases of the one before (508 bytes at 8 levels)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "alias-bomb": (_laughs(8), 2, "aliases"),
    "one-alias": ("id: x\nname: &n hello\ncategory: *n\n", 3, "aliases"),
    "nested-brackets": ("id: x\nsteps: " + "[" * 20_000 + "\n", 2, "nest"),
    "nested-maps": ("id: x\n" + "".join(" " * i + f"k{i}:\n" for i in range(200)), 66, "nested deeper than 64"),
    "too-many-values": ("id: x\nlist: [" + ",".join("1" for _ in range(30_000)) + "]\n", 2, "more than 20,000"),
    "too-large": ("id: x\n# " + "x" * 300_000 + "\n", 1, "larger than 256 KB"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_is_rejected_at_its_line_with_bounded_memory(name: str, tmp_path: Path) -> None:
    text, line, words = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, "utf-8")
    tracemalloc.start()
    try:
        loaded, problems = validate_journey_file(path, ROOT / "templates")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded is None and len(problems) == 1
    match = LOCATED.match(str(problems[0]))
    assert match, str(problems[0])
    assert match["path"].endswith(f"{name}.yaml") and int(match["line"]) == line
    assert words in match["message"]
    # The whole file is a few hundred kilobytes at most; building the alias bomb would take gigabytes.
    assert peak < 50 * 1024 * 1024
