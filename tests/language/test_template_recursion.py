"""Calls and templates nest at most ``render_bounds.MAX_NESTING`` deep.

A macro calling itself (directly, through another macro or through ``caller()``), a recursive loop
and a template including, importing or extending itself each ran until Python's recursion limit and
came back as a bare ``RecursionError`` naming nothing a template's author could act on; from a
stack already deep (a worker's) the limit can fall in the worker's own code. Each is now refused at
its template line with the bound in the message, in a preview, a dispatch batch and validate alike.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from engine.language.render_bounds import MAX_NESTING
from engine.language.rendering import Renderer, RenderError, check_templates, sample_context
from engine.language.template_check import check_template_syntax
from engine.sending.render_batch import BatchRenderer
from tests.language.test_rendering import write_template

RECURSIVE = {
    "direct": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "mutual": "{% macro f(n) %}{{ g(n) }}{% endmacro %}{% macro g(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "through_caller": "{% macro f() %}{{ caller() }}{% endmacro %}"
                      "{% macro g() %}{% call f() %}{{ g() }}{% endcall %}{% endmacro %}{{ g() }}",
    "recursive_loop": "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
    "includes_itself": "{% include 'includes_itself/sms.zh-CN.j2' %}",
    "extends_itself": "{% extends 'extends_itself/sms.zh-CN.j2' %}",
    "imports_itself": "{% import 'imports_itself/sms.zh-CN.j2' as me %}",
    "includes_the_other": "{% include 'included_back/sms.zh-CN.j2' %}",
}
# Written to its own file, not rendered on its own: it includes the template that included it.
INCLUDED_BACK = "{% include 'includes_the_other/sms.zh-CN.j2' %}"


def _write(root: Path) -> None:
    for name, body in RECURSIVE.items():
        write_template(root, name, {"sms.zh-CN.j2": "您好\n" + body})
    write_template(root, "included_back", {"sms.zh-CN.j2": INCLUDED_BACK})


def _refusal(render: Callable[[], object]) -> RenderError:
    with pytest.raises(RenderError) as caught:
        render()
    return caught.value


def _within(depth: int, render: Callable[[], RenderError]) -> RenderError:
    """``render()`` from a Python stack ``depth`` frames deep, as a worker's is."""
    return render() if depth == 0 else _within(depth - 1, render)


@pytest.mark.parametrize("renderer_class", [Renderer, BatchRenderer])
@pytest.mark.parametrize("stack_depth", [0, 500])
def test_recursion_is_refused_at_its_line_naming_the_bound(tmp_path: Path, renderer_class: type[Renderer],
                                                           stack_depth: int) -> None:
    root = tmp_path / "templates"
    _write(root)
    renderer = renderer_class(root, footer="")
    for name in RECURSIVE:
        render = partial(renderer.render, name, "sms", sample_context(), "zh-CN")
        error = _within(stack_depth, partial(_refusal, render))
        assert (error.path, error.line) == (f"{name}/sms.zh-CN.j2", 2), (name, str(error))
        assert f"deeper than {MAX_NESTING} levels" in error.reason, (name, error.reason)
        assert "RecursionError" not in error.reason, name


def test_validate_names_the_file_line_and_bound(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    _write(root)
    problems = check_templates(root, RECURSIVE)
    assert sorted((p.path.rsplit("/", 2)[-2], p.line) for p in problems) == sorted((n, 2) for n in RECURSIVE)
    assert all(f"deeper than {MAX_NESTING} levels" in p.message for p in problems), problems


def test_recursion_that_ends_within_the_bound_renders(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    countdown = "{% macro f(n) %}{{ n }}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}"
    tree = "{% for x in [[1, [2, [3]]]] recursive %}{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}" \
           "{% endif %}{% endfor %}"
    write_template(root, "part", {"sms.zh-CN.j2": "{{ depth }}"})
    write_template(root, "fine", {"sms.zh-CN.j2": countdown + "{{ f(" + str(MAX_NESTING - 2) + ") }}|" + tree
                                  + "|{% set depth = 1 %}{% include 'part/sms.zh-CN.j2' %}"})
    text = Renderer(root, footer="").render("fine", "sms", sample_context(), "zh-CN").text
    assert text == "".join(str(n) for n in range(MAX_NESTING - 2, -1, -1)) + "|123|1"


def test_validate_finds_recursion_that_never_ends_without_rendering_it(tmp_path: Path) -> None:
    # Never called with the sample data, so no render meets it: only reading the template finds it.
    root = tmp_path / "templates"
    write_template(root, "unused", {"sms.zh-CN.j2": "您好\n{% if customer.tier == 'none' %}{{ f(1) }}{% endif %}\n"
                                                    "{% macro f(n) %}{{ g(n) }}{% endmacro %}\n"
                                                    "{% macro g(n) %}{% call f(n) %}x{% endcall %}{% endmacro %}"})
    write_template(root, "itself", {"sms.zh-CN.j2": "您好\n{% include 'itself/sms.zh-CN.j2' %}"})
    write_template(root, "ending", {"sms.zh-CN.j2": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{% endif %}{% endmacro %}"
                                                    "{{ f(3) }}{{ f(0) if 0 else '' }}{% if 0 %}"
                                                    "{% include 'ending/sms.zh-CN.j2' %}{% endif %}您好"})
    assert check_templates(root, ["unused"]) == []
    found = sorted((p.path.rsplit("/", 2)[-2], p.line, p.message)
                   for p in check_template_syntax(root, ["unused", "itself", "ending"]))
    assert found == [
        ("itself", 2, "the template loads itself ('itself/sms.zh-CN.j2') on every render: it can never finish"),
        ("unused", 3, "macro 'f' calls itself on every call (f → g → f): it can never finish; call it again only "
                      "under an {% if %} that ends"),
        ("unused", 4, "macro 'g' calls itself on every call (g → f → g): it can never finish; call it again only "
                      "under an {% if %} that ends"),
    ], found
