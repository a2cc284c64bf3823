"""How deeply a template may nest, checked on its tokens before Jinja parses it.

Jinja's parser and code generator recurse once a level, and the Python they generate has limits of
its own (20 nested loops, 200 nested parentheses, 100 indents). Past them a template crashed
``journeys validate`` with a RecursionError, or failed at every render with a SyntaxError about
generated code at no line of the template. ``TemplateSandbox`` refuses such a template as a syntax
error at the line where it goes too deep. Real templates nest a few levels and write a handful of
operators in a tag.
"""

from __future__ import annotations

import jinja2

MAX_BLOCK_NESTING = 16
MAX_BRACKET_NESTING = 32
MAX_OPERATORS_PER_TAG = 100
_ENDLESS_TAGS = frozenset({"set", "include", "import", "from", "extends", "do", "else", "elif", "break", "continue"})
_OPENING, _CLOSING = frozenset("([{"), frozenset(")]}")


def nesting_problem(env: jinja2.Environment, source: str) -> tuple[int, str] | None:
    """(line, message) where ``source`` first nests blocks, brackets or operators past the bounds, else None."""
    blocks = brackets = operators = 0
    after_tag_start = False
    try:
        for lineno, kind, value in env.lex(source):
            if kind in ("block_begin", "variable_begin"):
                operators = 0
            elif kind == "operator" and value in _OPENING:
                brackets += 1
                if brackets > MAX_BRACKET_NESTING:
                    return lineno, f"brackets nested deeper than {MAX_BRACKET_NESTING} levels"
            elif kind == "operator" and value in _CLOSING:
                brackets -= 1
            elif kind == "operator" and value not in (",", ":"):
                operators += 1
                if operators > MAX_OPERATORS_PER_TAG:
                    return lineno, f"more than {MAX_OPERATORS_PER_TAG} operators and filters in one tag"
            elif kind == "name" and after_tag_start:
                # A block such as {% set x = 1 %} has no end tag; {% if %} and the like do.
                if value.startswith("end"):
                    blocks -= 1
                elif value not in _ENDLESS_TAGS:
                    blocks += 1
                    if blocks > MAX_BLOCK_NESTING:
                        return lineno, (f"blocks ({{% {value} %}} and the like) nested deeper than "
                                        f"{MAX_BLOCK_NESTING} levels")
            if kind != "whitespace":
                after_tag_start = kind == "block_begin"
    except jinja2.TemplateSyntaxError:
        return None  # the parse says what is wrong, at its line
    return None
