"""Line numbers in journey, template and settings files are the editor's, whatever the file's line breaks.

YAML also breaks lines at U+0085, U+2028 and U+2029, which an editor shows as nothing (text pasted from
a web page or a word processor brings them). Such a character is refused at the line and column an
editor shows it on, not read as a break that turns the rest of a comment into YAML and moves every
later line number by one. A file saved with CRLF or CR line ends has its problems at the same lines
as with LF.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.language.validation import validate_journey_file
from engine.language.yaml_lines import YamlError, load_located

ROOT = Path(__file__).resolve().parents[2]
JOURNEY = (ROOT / "journeys" / "app-login-recommendation.yaml").read_text("utf-8")
NAMES = {"\x85": "next line", "\u2028": "line separator", "\u2029": "paragraph separator"}
HIDDEN_BREAKS = sorted(NAMES)
LOCATED = re.compile(r"^.+\.yaml:(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")


def _problems(tmp_path: Path, text: str) -> list[tuple[int, int, str]]:
    path = tmp_path / "journey.yaml"
    path.write_bytes(text.encode("utf-8"))
    _loaded, problems = validate_journey_file(path, ROOT / "templates")
    located = [LOCATED.match(str(p)) for p in problems]
    assert all(located), problems
    return [(int(m["line"]), int(m["col"]), m["message"]) for m in located if m]


@settings(max_examples=40, deadline=None)
@given(line=st.integers(0, JOURNEY.count("\n") - 1), at=st.integers(0, 200), char=st.sampled_from(HIDDEN_BREAKS),
       ends=st.sampled_from(["\n", "\r\n", "\r"]))
def test_a_hidden_line_break_is_refused_where_the_editor_shows_it(line: int, at: int, char: str, ends: str) -> None:
    lines = JOURNEY.split("\n")
    column = min(at, len(lines[line]))
    lines[line] = lines[line][:column] + char + lines[line][column:]
    with pytest.raises(YamlError) as caught:
        load_located(ends.join(lines))
    error = caught.value
    assert (error.position.line, error.position.column) == (line + 1, column + 1)
    assert f"U+{ord(char):04X}" in error.message and "line break" in error.message


@pytest.mark.parametrize("char", HIDDEN_BREAKS)
def test_one_in_a_comment_rejects_the_journey_file_at_that_line(tmp_path: Path, char: str) -> None:
    lines = JOURNEY.split("\n")
    assert lines[1].startswith("#")
    lines[1] += char + "pasted from a web page"
    assert _problems(tmp_path, "\n".join(lines)) == [
        (2, len(JOURNEY.split("\n")[1]) + 1,
         f"character U+{ord(char):04X} ({NAMES[char]}) is not allowed: YAML reads it as a line break where an "
         "editor shows none; use an ordinary line break or delete it")]


@pytest.mark.parametrize("ends", ["\r\n", "\r"])
def test_problems_stand_at_the_same_lines_whatever_the_line_ends(tmp_path: Path, ends: str) -> None:
    broken = JOURNEY.replace("priority: 30", "priority: high").replace("after: 30d", "after: soon")
    with_lf = _problems(tmp_path, broken)
    assert len(with_lf) == 2
    assert _problems(tmp_path, broken.replace("\n", ends)) == with_lf
    # And a character the reader refuses, found before any YAML is read, at its line as well.
    unreadable = broken.replace("priority: high", "priority: \x07")
    assert _problems(tmp_path, unreadable.replace("\n", ends)) == _problems(tmp_path, unreadable)
