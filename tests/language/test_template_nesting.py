"""A template nested past what Jinja and the Python it generates can take is refused as a syntax error
at the line where it goes too deep, by ``journeys validate``'s checks and by the renderer alike.

Before, 100 nested brackets or a chain of 600 filters made the syntax check raise a RecursionError
(``journeys validate`` ended in a traceback), and 25 nested loops or 100 nested ifs passed it and then
failed at every render with a SyntaxError about generated code, reported at line 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.language.rendering import Renderer, RenderError, check_templates, sample_context
from engine.language.template_check import check_template_syntax
from engine.language.template_nesting import MAX_BLOCK_NESTING, MAX_BRACKET_NESTING, MAX_OPERATORS_PER_TAG
from tests.language.test_rendering import write_template

HEAD = "您好\n"  # the nesting starts on line 2


def _nested(kind: str, depth: int) -> str:
    return HEAD + {
        "brackets": "{{ " + "(" * depth + "1" + ")" * depth + " }}",
        "lists": "{{ " + "[" * depth + "]" * depth + "|length }}",
        "ifs": "{% if 1 %}" * depth + "x" + "{% endif %}" * depth,
        "loops": "{% for i in [1] %}" * depth + "x" + "{% endfor %}" * depth,
        "operators": "{{ 1" + " + 1" * depth + " }}",
        "filters": "{{ 'x'" + "|upper" * depth + " }}",
    }[kind]


BOUNDS = {"brackets": MAX_BRACKET_NESTING, "lists": MAX_BRACKET_NESTING, "ifs": MAX_BLOCK_NESTING,
          "loops": MAX_BLOCK_NESTING, "operators": MAX_OPERATORS_PER_TAG, "filters": MAX_OPERATORS_PER_TAG}
WORDS = {"brackets": "brackets nested deeper than", "lists": "brackets nested deeper than",
         "ifs": "blocks ({% if %} and the like) nested deeper than",
         "loops": "blocks ({% for %} and the like) nested deeper than",
         "operators": "operators and filters in one tag", "filters": "operators and filters in one tag"}


@pytest.mark.parametrize("kind", sorted(BOUNDS))
@pytest.mark.parametrize("depth", [lambda bound: bound + 1, lambda bound: 25 * bound], ids=["just past", "far past"])
def test_nesting_past_the_bound_is_refused_at_its_line(tmp_path: Path, kind: str, depth: object) -> None:
    root = tmp_path / "templates"
    write_template(root, "deep", {"sms.zh-CN.j2": _nested(kind, depth(BOUNDS[kind]))})  # type: ignore[operator]
    for problems in (check_template_syntax(root, ["deep"]), check_templates(root)):
        assert [(p.line, p.message) for p in problems] == [(2, problems[0].message)], problems
        assert problems[0].message.startswith("template syntax: ") and WORDS[kind] in problems[0].message
    with pytest.raises(RenderError, match=r"sms\.zh-CN\.j2:2:"):
        Renderer(root, footer="").render("deep", "sms", sample_context(), "zh-CN")


@pytest.mark.parametrize("kind", sorted(BOUNDS))
def test_nesting_at_the_bound_renders(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "templates"
    write_template(root, "deep", {"sms.zh-CN.j2": _nested(kind, BOUNDS[kind])})
    assert check_template_syntax(root, ["deep"]) == []
    assert Renderer(root, footer="").render("deep", "sms", sample_context(), "zh-CN").text.startswith("您好")
