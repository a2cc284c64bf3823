"""Fuzzing the journey loader: whatever text a journey file holds, validation never crashes and
every problem is ``path:line:col: message`` with the line inside the file.

Two sources: arbitrary text and bytes, and the shipped journey files mutated line by line
(deleted, duplicated, swapped, re-indented, truncated, a token replaced), which reaches far
deeper into the schema checks than random text does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.language.validation import Problem, validate_journey_file

ROOT = Path(__file__).resolve().parents[2]
JOURNEYS = sorted((ROOT / "journeys").glob("*.yaml"))
TEMPLATES = ROOT / "templates"
PROBLEM_RE = re.compile(r"^(?P<path>[^\n]+):(?P<line>\d+):(?P<col>\d+): (?P<message>\S[^\n]*)$")
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOKENS = ["", "-", ":", "{", "}", "[", "]", "'", '"', "&a", "*a", "!!python/object:os.system", "<<: *a", "\t",
          "null", "~", "yes", "1e999", "-30d", "0d", "99999999999999999999", "sms", "wechat", "nope", "|", ">",
          "%YAML 1.1", "---", "...", "? x", "\u2028", "é", "当", "\x00"]

stats = {"cases": 0, "rejected": 0, "accepted": 0}


def _check(path: Path, source_lines: int) -> list[Problem]:
    loaded, problems = validate_journey_file(path, TEMPLATES)
    stats["cases"] += 1
    if loaded is not None:
        stats["accepted"] += 1
        assert problems == []
        return []
    stats["rejected"] += 1
    assert problems, "a rejected file must say why"
    for problem in problems:
        shown = str(problem)
        match = PROBLEM_RE.match(shown)
        assert match, f"not path:line:col: message: {shown!r}"
        # The end-of-file mark of a file ending in a newline is the line after the last one.
        assert 1 <= problem.line <= max(1, source_lines + 1), shown
        assert problem.column >= 1, shown
    return problems


def _lines(text: str) -> int:
    return len(text.splitlines())


@FUZZ
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=400))
@example("\x1f")  # found by this test: a control character crashed the YAML reader before any position
@example("id: a\nname: b\x07c\n")
@example("!0")  # found by this test: the reason spanned several lines
@example("-: !!python/object:os.system\n!!python/object:os.system: x\n")  # found: a tagged key crashed the loader
def test_arbitrary_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    _check(path, _lines(text))


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        lines = _lines(data.decode("utf-8"))
    except UnicodeDecodeError:
        lines = 1
    _check(path, lines)


def _mutate(lines: list[str], data: st.DataObject) -> list[str]:
    lines = list(lines)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        if not lines:
            lines = [data.draw(st.sampled_from(TOKENS))]
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        kind = data.draw(st.sampled_from(["delete", "duplicate", "swap", "indent", "dedent", "token", "truncate",
                                          "replace_value", "insert"]), label="kind")
        line = lines[i]
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, line)
        elif kind == "swap":
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "indent":
            lines[i] = "  " + line
        elif kind == "dedent":
            lines[i] = line[2:] if line.startswith("  ") else line.lstrip()
        elif kind == "token":
            at = data.draw(st.integers(0, len(line)))
            lines[i] = line[:at] + data.draw(st.sampled_from(TOKENS)) + line[at:]
        elif kind == "truncate":
            lines[i] = line[: data.draw(st.integers(0, len(line)))]
        elif kind == "replace_value" and ":" in line:
            key = line.split(":", 1)[0]
            value = data.draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=12).filter(lambda s: "\n" not in s
                                        and "\r" not in s and not any(0xD800 <= ord(c) <= 0xDFFF for c in s))))
            lines[i] = f"{key}: {value}"
        elif kind == "insert":
            lines.insert(i, data.draw(st.sampled_from(TOKENS)) + ": " + data.draw(st.sampled_from(TOKENS)))
    return lines


@FUZZ
@given(st.sampled_from(JOURNEYS), st.data())
def test_mutated_shipped_journeys(tmp_path: Path, original: Path, data: st.DataObject) -> None:
    text = "\n".join(_mutate(original.read_text(encoding="utf-8").splitlines(), data)) + "\n"
    path = tmp_path / original.name
    path.write_text(text, encoding="utf-8")
    _check(path, _lines(text))


def test_huge_duration_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    """Found by the mutation fuzzer: an overflowing duration raised OverflowError out of validation."""
    original = ROOT / "journeys" / "renewal-reminder.yaml"
    text = re.sub(r"(\b\d+)([wdhm]\b)", r"99999999999999999999\2", original.read_text(encoding="utf-8"), count=1)
    assert text != original.read_text(encoding="utf-8")
    path = tmp_path / original.name
    path.write_text(text, encoding="utf-8")
    problems = _check(path, _lines(text))
    assert any("longer than 100 years" in p.message for p in problems), problems


def test_shipped_journeys_are_valid() -> None:
    """The mutation baseline: every shipped file loads as it is."""
    assert JOURNEYS
    for path in JOURNEYS:
        loaded, problems = validate_journey_file(path, TEMPLATES)
        assert loaded is not None, problems


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> object:
    yield None
    print(f"\njourney loader fuzz: {stats['cases']} cases, {stats['rejected']} rejected with path:line:col problems, "
          f"{stats['accepted']} accepted, 0 crashes")
