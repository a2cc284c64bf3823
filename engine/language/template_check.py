"""Checking templates before a customer would see them: their Jinja syntax, and a render of
every file with the sample context (every part present, realistic sizes).

``journeys validate`` adds what these find to its report (``engine.language.validation``),
each problem at the template file's line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes

from channels.template_files import FILE_FOR, LOCALES, available_templates, template_file
from engine.language.paths import templates_dir
from engine.language.problems import Problem, display_path, read_source
from engine.language.template_context import TemplateContext, sample_context
from engine.language.templates import Renderer, RenderError, jinja_environment, load_meta
from engine.language.yaml_lines import YamlError, load_located


def check_templates(root: Path | None = None, names: Iterable[str] | None = None, *,
                    configured_footer: str | None = None) -> list[Problem]:
    """Render every template (or ``names``) in every channel and locale it has with a sample context.

    Catches undefined variables, syntax and type errors, a bad meta.yaml and SMS over their
    segment limit, each as a ``Problem`` at the template file's line. ``journeys validate``
    can add these to its report. ``configured_footer`` is the marketing SMS footer to measure with
    (None: read ``config/delivery.yaml``, which must then be valid).
    """
    root = root or templates_dir()
    rend = Renderer(root, footer=None, configured_footer=configured_footer)
    problems: list[Problem] = []
    for name in sorted(set(names) if names is not None else available_templates(root)):
        meta_path = root / name / "meta.yaml"
        try:
            load_meta(root, name)
        except ValueError as exc:
            problems.append(Problem(display_path(meta_path), getattr(exc, "line", 1), 1, str(exc)))
            continue
        for kind in ("sms", "email", "wechat", "task", "push", "webhook"):
            for locale in LOCALES:
                path = template_file(root, name, kind, locale)
                if not path.is_file():
                    continue
                for context, given in sample_contexts(kind, locale):
                    try:
                        if kind == "task":
                            rend.render_task_script(name, context, locale)
                        else:
                            rend.render(name, kind, context, locale)
                    except RenderError as exc:
                        problems.append(Problem(display_path(path), exc.line or 1, 1, exc.reason + given))
                        break
    return problems


# A name in Chinese characters: the book's customers' names are in any script whatever their language,
# and one such character makes a whole SMS UCS-2 (70 characters a segment, not 160), so an English
# text that fits its max_segments with a Latin name may not with a Chinese one. Four characters: a
# compound surname and a given name, the long end of what a book holds.
CJK_NAME = "欧阳娜娜"


def sample_contexts(kind: str, locale: str) -> list[tuple[TemplateContext, str]]:
    """The sample contexts a file is rendered with, each with the words a problem adds about it."""
    context = sample_context(locale)
    if kind != "sms" or not context.customer.name.isascii():
        return [(context, "")]
    named = replace(context, customer=replace(context.customer, name=CJK_NAME))
    return [(context, ""), (named, f" with a customer's name in Chinese characters ({CJK_NAME}), as many in the "
                                   "book have whatever their language: raise max_segments or shorten the text")]


def compile_source(env: jinja2.Environment, source: str) -> tuple[nodes.Template | None, list[tuple[int, str]]]:
    """Parse and compile one Jinja source as the renderer would: (its tree, or None when it does not
    compile; each problem as (line in the source, plain message)).

    Every check that reads a template's tree goes through here, so a template Jinja refuses becomes
    a problem at its line instead of an exception out of whichever check met it first. An unknown
    filter or test is named even inside ``{% if %}``, where Jinja defers it to the render that
    reaches it (a customer's message, not the sample's).
    """
    try:
        tree = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return None, [(exc.lineno or 1, f"template syntax: {exc.message}")]
    found: set[tuple[int, str]] = set()
    for node in tree.find_all(nodes.Filter):
        assert isinstance(node, nodes.Filter)
        if node.name not in env.filters:
            found.add((node.lineno, f"unknown filter {node.name!r}"))
    for test in tree.find_all(nodes.Test):
        assert isinstance(test, nodes.Test)
        if test.name not in env.tests:
            found.add((test.lineno, f"unknown test {test.name!r}"))
    if found:
        return None, sorted(found)
    try:
        env.compile(tree, raw=True)  # code generation is where Jinja's remaining assertions fail
    except jinja2.TemplateSyntaxError as exc:  # TemplateAssertionError included
        return None, [(exc.lineno or 1, f"template syntax: {exc.message}")]
    return tree, []


def check_template_syntax(templates_root: Path, names: Iterable[str]) -> list[Problem]:
    """Jinja2 syntax of every file of the named templates, reported at the template file's line."""
    return [p for found in template_problems_by_name(templates_root, names).values() for p in found]


def template_problems_by_name(templates_root: Path, names: Iterable[str]) -> dict[str, list[Problem]]:
    """Per template name, what keeps its files from compiling (syntax, unknown filters and tests,
    private names, YAML): a template with any cannot be sent."""
    env = jinja_environment(trim_blocks=False)
    out: dict[str, list[Problem]] = {}
    for name in sorted(set(names)):
        problems = out.setdefault(name, [])
        folder = templates_root / name
        meta = folder / "meta.yaml"
        if meta.is_file():
            source, unread = read_source(meta)
            try:
                if source is not None:
                    load_located(source)
            except YamlError as exc:
                problems.append(Problem(display_path(meta), exc.position.line, exc.position.column, exc.message))
            problems.extend([unread] if unread is not None else [])
        for kind in FILE_FOR:
            for locale in LOCALES:
                path = template_file(templates_root, name, kind, locale)
                if path.is_file():
                    problems.extend(_file_problems(env, path))
    return out


def _file_problems(env: jinja2.Environment, path: Path) -> list[Problem]:
    text, unread = read_source(path)
    if text is None:
        assert unread is not None
        return [unread]  # not UTF-8, too large, no regular file: the template cannot be sent
    sources: list[str] = [text]
    if path.suffix == ".yaml":
        try:
            data = load_located(text).data or {}
        except YamlError as exc:
            return [Problem(display_path(path), exc.position.line, exc.position.column, exc.message)]
        sources = [str(v) for v in template_strings(data)]
    problems: list[Problem] = []
    for src in sources:
        tree, found = compile_source(env, src)
        for lineno, message in found:
            line = lineno if path.suffix != ".yaml" else line_of(text, src)
            problems.append(Problem(display_path(path), line, 1, message))
        for lineno, message in endless_recursion(tree, f"{path.parent.name}/{path.name}") if tree is not None else ():
            line = lineno if path.suffix != ".yaml" else line_of(text, src)
            problems.append(Problem(display_path(path), line, 1, message))
        for lineno, attr in _private_names(tree) if tree is not None else ():
            line = lineno if path.suffix != ".yaml" else line_of(text, src)
            problems.append(Problem(display_path(path), line, 1,
                                    f"template reads {attr!r}: names starting with _ are not allowed "
                                    "(templates see plain customer data only)"))
    return problems


# What may not run each time the code around it does: a branch, a loop's body, one side of and/or, a
# macro's body (until called).
_CONDITIONAL = (nodes.If, nodes.For, nodes.CondExpr, nodes.And, nodes.Or, nodes.Macro)


def _certain_calls(node: nodes.Node) -> Iterator[str]:
    """The names ``node`` calls every time it runs (a call block's body runs only if its macro calls caller())."""
    if isinstance(node, _CONDITIONAL):
        return
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
        yield node.node.name
    for child in [node.call] if isinstance(node, nodes.CallBlock) else node.iter_child_nodes():
        yield from _certain_calls(child)


def endless_recursion(tree: nodes.Template, own_name: str) -> Iterator[tuple[int, str]]:
    """(line, message) for each macro that calls itself on every call, directly or through others, and each
    include, import or extends of the file itself outside any branch: renders that can never finish.

    The render refuses them too (``render_bounds.MAX_NESTING``), but only on the path the sample data takes;
    recursion that depends on the data (``{% if n %}{{ f(n - 1) }}{% endif %}``) is left to that bound."""
    macros = {macro.name: macro for macro in tree.find_all(nodes.Macro)}
    calls = {name: {c for stmt in macro.body for c in _certain_calls(stmt) if c in macros}
             for name, macro in macros.items()}
    for name, macro in macros.items():
        came_from: dict[str, str] = {}  # each macro reached from this one, by the macro that calls it
        frontier = [name]
        while frontier and name not in came_from:
            current = frontier.pop()
            for callee in sorted(calls[current] - came_from.keys()):
                came_from[callee] = current
                frontier.append(callee)
        if name in came_from:
            chain = [name]
            while chain[-1] != name or len(chain) == 1:
                chain.append(came_from[chain[-1]])
            yield macro.lineno, (f"macro {name!r} calls itself on every call ({' → '.join(reversed(chain))}): it can "
                                 "never finish; call it again only under an {% if %} that ends")
    loads = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
    for stmt in _unbranched(tree.body):
        if isinstance(stmt, loads) and isinstance(stmt.template, nodes.Const) and stmt.template.value == own_name:
            yield stmt.lineno, f"the template loads itself ({own_name!r}) on every render: it can never finish"


def _unbranched(body: list[nodes.Node]) -> Iterator[nodes.Node]:
    for stmt in body:
        yield stmt
        if not isinstance(stmt, _CONDITIONAL):
            yield from _unbranched([child for child in stmt.iter_child_nodes() if isinstance(child, nodes.Stmt)])


def _private_names(tree: nodes.Template) -> Iterator[tuple[int, str]]:
    """Attribute and item reads of names starting with ``_``: the sandbox refuses them when the
    template runs, and ``journeys validate`` says so before it is published."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            yield node.lineno, node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str) and node.arg.value.startswith("_"):
            yield node.lineno, node.arg.value


def template_strings(data: Any) -> Iterator[Any]:
    if isinstance(data, dict):
        for value in data.values():
            yield from template_strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from template_strings(value)
    elif isinstance(data, str):
        yield data


def line_of(text: str, fragment: str) -> int:
    first = fragment.splitlines()[0] if fragment else ""
    for number, line in enumerate(text.splitlines(), start=1):
        if first and first in line:
            return number
    return 1
