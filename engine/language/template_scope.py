"""Checking the variables each journey's templates read against what that journey's touches have.

``template_check.check_templates`` renders a template with every part present, so a template that
reads ``policy.expiry_date`` passes even when it is sent by a birthday journey whose touches
have no policy: the customer then got nothing. Here every variable a template reads (in every
branch, not only those a sample render takes) is checked against the parts of the journey that
sends it, and a miss is reported at the template's line and column with the variables that
journey has; ``journeys validate`` rejects that journey.

What a journey's touches have (``parts_in_scope``): the customer, the journey, the advisor and
the unsubscribe link always; the policy when the entry is anchored on a policy date or is a
``policy.*`` event; the claim for a claim anchor or a ``claim.*`` event; the holiday for a holiday
anchor. The event is per step (``event_types_at``): the entry's event until a ``wait_for`` ends on
its event, that one after it (rendering reads it from the enrollment, ``engine.language.rendering``),
with the fields ``config/events.yaml`` gives its type; a step some path reaches without any event
has none. A template may guard a part itself (``{% if policy %}``, ``policy is defined``).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jinja2
from jinja2 import meta, nodes

from channels.template_files import LOCALES, template_file
from engine.language.catalogue import EVENT_TYPES
from engine.language.journey_model import Journey
from engine.language.problems import Problem, display_path
from engine.language.template_check import compile_source, line_of, template_strings
from engine.language.template_context import sample_context
from engine.language.templates import jinja_environment
from engine.language.yaml_lines import YamlError, load_located

MESSAGE_KINDS = ("sms", "email", "wechat", "push")
ALWAYS = ("customer", "now_local", "locale", "journey", "advisor", "unsubscribe_url")


class _Loaded(Protocol):
    journey: Journey
    path: str


def parts_in_scope(journey: Journey) -> dict[str, str]:
    """The optional parts every touch of the journey has, each with the reason (for messages); the
    event, which depends on the step, is ``event_types_at``'s."""
    parts: dict[str, str] = {}
    entry = journey.entry
    if entry.date is not None:
        anchor = entry.date.anchor
        if anchor.startswith("policy."):
            parts["policy"] = f"its entry is anchored on {anchor}"
        elif anchor.startswith("claim."):
            parts["claim"] = f"its entry is anchored on {anchor}"
        elif anchor == "holiday":
            parts["holiday"] = "its entry is a holiday"
    if entry.event is not None:
        head = entry.event.type.split(".", 1)[0]
        if head in ("policy", "claim"):
            parts[head] = f"its entry is the event {entry.event.type}"
    return parts


def event_types_at(journey: Journey) -> list[frozenset[str | None]]:
    """Per step, the types the event its touches render with may have (None: some path has none).

    The entry event's type (None for a schedule or date entry) flows along every edge but the
    ``on_event`` edge of a ``wait_for``, which carries the type that wait ended on."""
    ids = {step.id: i for i, step in enumerate(journey.steps)}
    entry = journey.entry.event.type if journey.entry.event is not None else None
    types: list[set[str | None]] = [set() for _ in journey.steps]
    if not journey.steps:
        return []
    types[0].add(entry)
    pending = [0]
    while pending:
        index = pending.pop()
        step = journey.steps[index]
        for position, target in enumerate(journey.successors(index)):
            if target not in ids:
                continue  # exit
            carried = {step.wait_for.event} if step.wait_for is not None and position == 0 else types[index]
            before = len(types[ids[target]])
            types[ids[target]].update(carried)
            if len(types[ids[target]]) != before:
                pending.append(ids[target])
    return [frozenset(t) for t in types]


def _entry_words(journey: Journey) -> str:
    entry = journey.entry
    if entry.schedule is not None:
        return "a schedule"
    if entry.date is not None:
        return f"a date on {entry.date.anchor}"
    assert entry.event is not None
    return f"the event {entry.event.type}"


@dataclass(frozen=True)
class _Scope:
    top: dict[str, Any]  # variable → its sample value (a dict for a view with fields)
    event_fields: tuple[str, ...] | None  # event.data fields; None when open (unknown type)
    event_types: frozenset[str | None] = frozenset()  # what the step's event may be (for messages)

    def listing(self) -> str:
        names: list[str] = []
        for name, value in self.top.items():
            if isinstance(value, dict):
                for key in value:
                    if name == "event" and key in ("data", "words"):
                        names.extend(f"event.{key}.{f}" for f in self.event_fields or ())
                    else:
                        names.append(f"{name}.{key}")
            else:
                names.append(name)
        return ", ".join(names)


@functools.lru_cache(maxsize=64)
def _sample_variables(locale: str) -> dict[str, Any]:
    return sample_context(locale).variables(locale)


def _scope(journey: Journey, locale: str, types: frozenset[str | None]) -> _Scope:
    everything = _sample_variables(locale)
    parts = parts_in_scope(journey)
    if types and None not in types:
        parts["event"] = "every path to the step has an event"
    top = {k: v for k, v in everything.items() if k in ALWAYS or k in parts}
    fields: tuple[str, ...] | None = None
    known = [t for t in types if t is not None and t in EVENT_TYPES]
    if known and len(known) == len(types):
        # Reached with different events, a field only some of them carry is no field of the step's event.
        fields = tuple(name for name in EVENT_TYPES[known[0]] if all(name in EVENT_TYPES[t] for t in known[1:]))
    return _Scope(top, fields, types)


def _guarded(tree: nodes.Template) -> set[str]:
    """Names a template tests before use (``{% if policy %}``, ``policy is defined``)."""
    out: set[str] = set()
    for node in tree.find_all((nodes.If, nodes.CondExpr)):
        assert isinstance(node, nodes.If | nodes.CondExpr)
        out.update(n.name for n in node.test.find_all(nodes.Name))
    for test in tree.find_all(nodes.Test):
        if test.name in ("defined", "undefined", "none") and isinstance(test.node, nodes.Name):
            out.add(test.node.name)
    return out


def _reads(tree: nodes.Template, free: set[str]) -> list[tuple[int, list[str]]]:
    """(line, dotted path) of each read of a free variable: ``customer.name``, ``event.data.nps``
    (a key that is no constant ends the path there), or a bare ``policy``."""
    paths: set[tuple[int, tuple[str, ...]]] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        parts: list[str] = []
        cur: nodes.Node = node
        while isinstance(cur, nodes.Getattr | nodes.Getitem):
            if isinstance(cur, nodes.Getattr):
                parts.append(cur.attr)
            elif isinstance(cur.arg, nodes.Const) and isinstance(cur.arg.value, str):
                parts.append(cur.arg.value)
            else:
                parts = []
            cur = cur.node
        if isinstance(cur, nodes.Name) and cur.name in free:
            paths.add((node.lineno, (cur.name, *reversed(parts))))
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name in free:
            paths.add((node.lineno, (node.name,)))
    # Only the longest reading of each chain: ``event.data.nps`` stands for ``event`` and ``event.data``.
    longest = [(line, path) for line, path in paths
               if not any(other[: len(path)] == path and len(other) > len(path) for ln, other in paths if ln == line)]
    return [(line, list(path)) for line, path in sorted(longest)]


def _column(source_line: str, dotted: str) -> int:
    for probe in (dotted, dotted.split(".")[0]):
        index = source_line.find(probe)
        if index >= 0:
            return index + 1
    return 1


def _problem_of(path: list[str], scope: _Scope, journey: Journey, globals_: Iterable[str]) -> str | None:
    root = path[0]
    dotted = ".".join(path)
    if root in globals_:
        return None
    if root not in scope.top:
        why = parts_in_scope_reason(root, journey)
        if root == "event" and scope.event_types - {None}:
            why += " and some path reaches this step without a wait_for ending on its event"
        return f"undefined variable {dotted!r}{why}"
    value = scope.top[root]
    if not isinstance(value, dict) or len(path) < 2:
        return None
    field = path[1]
    if field not in value:
        hint = difflib.get_close_matches(field, list(value), n=1)
        return f"undefined variable {dotted!r}" + (f" (did you mean '{root}.{hint[0]}'?)" if hint else "")
    if root == "event" and field in ("data", "words") and len(path) > 2 and scope.event_fields is not None:
        name = path[2]
        if name not in scope.event_fields:
            hint = difflib.get_close_matches(name, scope.event_fields, n=1)
            which = " / ".join(sorted(t for t in scope.event_types if t is not None))
            return (f"undefined variable {dotted!r}: {which} has no field {name!r}"
                    + (f" (did you mean 'event.{field}.{hint[0]}'?)" if hint else ""))
    return None


def parts_in_scope_reason(root: str, journey: Journey) -> str:
    if root in ("policy", "claim", "event", "holiday"):
        return f": journey {journey.id!r} has no {root} in scope (its entry is {_entry_words(journey)})"
    return ""


def _sources(path: Path) -> Iterator[tuple[str, int]]:
    """(Jinja source, first line in the file) of a template file; each string of a YAML one."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".yaml":
        yield text, 1
        return
    try:
        data = load_located(text).data or {}
    except YamlError:
        return  # check_template_syntax reports it
    for item in template_strings(data):
        yield item, line_of(text, item)


def check_template_scopes(journeys: Iterable[_Loaded], templates_root: Path) -> dict[str, list[Problem]]:
    """Problems per journey id: each variable a template it sends reads that its touches lack."""
    env = jinja_environment(trim_blocks=False)
    globals_ = set(env.globals) | set(env.filters)
    reads: dict[Path, list[_Read]] = {}  # each file is parsed once, however many journeys send it
    out: dict[str, list[Problem]] = {}
    for loaded in journeys:
        journey = loaded.journey
        found: set[Problem] = set()
        event_types = event_types_at(journey)
        for index, step in enumerate(journey.steps):
            if step.send is None:
                continue
            # ``channels: by_engagement`` lists none itself: every message file the template has.
            for kind in step.send.listed or MESSAGE_KINDS:
                if kind not in MESSAGE_KINDS:
                    continue
                for locale in LOCALES:
                    file = template_file(templates_root, step.send.template, kind, locale)
                    if file not in reads:
                        reads[file] = _file_reads(file, env) if file.is_file() else []
                    scope = _scope(journey, locale, event_types[index])
                    for read in reads[file]:
                        message = _problem_of(read.path, scope, journey, globals_)
                        if message is not None:
                            found.add(Problem(display_path(file), read.line, read.column,
                                              f"{message}; template {step.send.template!r} is sent by journey "
                                              f"{journey.id!r} step {step.id!r}, which has: {scope.listing()}"))
        if found:
            out[journey.id] = sorted(found)
    return out


@dataclass(frozen=True)
class _Read:
    line: int  # in the file
    column: int
    path: list[str]  # customer.name → ["customer", "name"]


def _file_reads(file: Path, env: jinja2.Environment) -> list[_Read]:
    """Every read of a variable the template does not set itself, where it stands in the file."""
    out: list[_Read] = []
    file_lines = file.read_text(encoding="utf-8").splitlines()
    for source, first_line in _sources(file):
        tree, problems = compile_source(env, source)
        if tree is None or problems:
            continue  # check_template_syntax reports it, and rejects every journey that sends it
        try:
            free = meta.find_undeclared_variables(tree) - _guarded(tree)
        except jinja2.TemplateSyntaxError:
            continue  # compile_source compiled it with this environment: never expected here
        for line, path in _reads(tree, free):
            at = first_line + line - 1
            text_line = file_lines[at - 1] if 0 < at <= len(file_lines) else ""
            out.append(_Read(at, _column(text_line, ".".join(path)), path))
    return out
