"""Whether each ``{field, op, value}`` leaf compares like with like.

Both evaluators (``engine.language.conditions``) compare values of unrelated types as unequal,
so a leaf whose value has the wrong type does not fail loudly: it matches everyone or no one (a
birthday ``gt 5`` compares epoch seconds with 5; ``contains [motor]`` looks for a list inside
the list). ``journeys validate`` therefore refuses such a leaf, at the value (or the list item)
at fault. The value a leaf needs follows from its field's kind (``catalogue``, and
``config/events.yaml`` for ``event.data.*``) and its operator:

- ``eq``/``ne``: one value of the field's type (for a list field, a list of its items);
- ``lt le gt ge``: a number for a number, a date for a date, text for text; booleans, lists and
  names from a fixed set (tiers, channels) have no order;
- ``in``/``not_in``: a list of values of the field's type; not for a list field (``contains``);
- ``contains``: one item for a list field, one piece of text for a text field;
- ``within_last``/``older_than``/``within_next``: a date field (the duration is the model's);
- ``exists``/``missing``: any field.

A date is an ISO date (``2024-01-31``, quoted or not) or date and time (``2024-01-31T09:00``),
exactly what ``conditions.date_literal`` turns into the epoch seconds the field is compared in.
``customer.attributes.*`` and fields of unknown kind (``any``) are not checked.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

from engine.language import catalogue, journey_model
from engine.language.authoring_checks import nearest
from engine.language.conditions import date_literal
from engine.language.event_types import words_of
from engine.language.journey_bounds import condition_number_problem
from engine.language.journey_model import Condition
from engine.language.settings_model import OUTCOME_CODES
from engine.language.yaml_lines import Path_
from store.models import CHANNELS, PRODUCT_LINES, TIERS

# The event an agent's outcome comes with (``event.data.outcome``: one of the desk's outcome codes).
OUTCOME_EVENT = "task.completed"
_KNOWN_KINDS = ("str", "int", "float", "bool", "date", "datetime", "list", "any")
_ORDER_OPS = ("lt", "le", "gt", "ge")
# What a field's value is called in a message, and the name of one such value.
_KIND_WORDS: dict[str, tuple[str, str]] = {
    "int": ("a number", "a number"),
    "float": ("a number", "a number"),
    "str": ("text", "text"),
    "bool": ("true or false", "true or false"),
    "date": ("a date", "a date (e.g. 2024-01-31)"),
    "datetime": ("a date and time", "a date (e.g. 2024-01-31 or 2024-01-31T09:00)"),
    "list": ("a list of text", "a list of text"),
}


def _enum(field: str, known_tiers: Sequence[str], events: Collection[str] = ()) -> tuple[str, Sequence[str]] | None:
    """(what a value is called, the values there are) for a field whose values form a fixed set. An agent's
    outcome is one of the desk's codes: a misspelt one (``no_anwser``) would never match, and say nothing."""
    if field == "customer.tier":
        return "tier", known_tiers
    if field == "customer.preferred_channels":
        return "channel", CHANNELS
    if field == "event.data.outcome" and {t for t in events if "outcome" in catalogue.EVENT_TYPES.get(t, {})} == {
            OUTCOME_EVENT}:
        return "outcome", OUTCOME_CODES
    return None


def _fits(kind: str, value: Any) -> bool:
    """Whether ``value`` is one value of a field of ``kind`` (a list field's value is a list)."""
    if kind in ("int", "float"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("date", "datetime"):
        return date_literal(value) is not None
    if kind == "list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return True


def _unknown(field: str, enum: tuple[str, Sequence[str]], value: Any) -> str | None:
    name, known = enum
    if isinstance(value, str) and value not in known:
        if name == "tier":  # the words validate has always used for a tier
            return f"unknown tier {value!r}: tiers are {', '.join(known)}"
        return f"unknown {name} {value!r}: {field} holds {', '.join(known)}"
    return None


def leaf_problems(field: str, kind: str, op: str, value: Any, known_tiers: Sequence[str],
                  events: Collection[str] = ()) -> Iterator[tuple[Path_, str]]:
    """(where in the leaf, why) for each way ``value`` does not suit ``field`` (of ``kind``) and ``op``;
    ``events``: the types ``event.*`` may be there."""
    if op in journey_model.VALUELESS_OPERATORS:
        return
    # Whatever the field (an attribute's or an event's too): a number the rules engine cannot compare with.
    numbers = [(("value", i) if isinstance(value, list) else ("value",), item)
               for i, item in enumerate(value if isinstance(value, list) else [value])
               if isinstance(item, int | float) and not isinstance(item, bool)]
    wrong = [(where, message) for where, number in numbers if (message := condition_number_problem(number))]
    yield from wrong
    if wrong or kind == "any":
        return
    what, needs = _KIND_WORDS.get(kind, (kind, kind))
    if op in journey_model.DURATION_OPERATORS:
        if kind not in ("date", "datetime"):
            yield ("op",), f"operator {op} needs a date field; {field} is {kind}"
        elif field == "customer.birthday" and op != "older_than":
            # The date of birth lies years back: "birthday within the next 7 days" would never hold.
            yield ("op",), (f"customer.birthday is the date of birth, years ago, so {op} never holds; for the days "
                            f"around the birthday enter on it: entry: {{date: {{anchor: customer.birthday, "
                            f"offset: -7d}}}}, or use customer.age")
        return
    enum = _enum(field, known_tiers, events)
    item_kind = "str" if kind == "list" else kind
    if op in _ORDER_OPS:
        if kind in ("bool", "list") or enum is not None:
            yield ("op",), f"{field} is {what}; {op} does not apply to it (its values have no order)"
        elif not _fits(kind, value):
            yield ("value",), f"{field} is {what}; {op} needs {needs}, not {value!r}"
        return
    if op == "contains":
        if kind not in ("list", "str"):
            yield ("op",), f"{field} is {what}; contains needs a list or text field"
        elif isinstance(value, list):
            yield ("value",), f"contains takes one value, not a list: {field} contains {value!r} never holds"
        elif not isinstance(value, str):
            yield ("value",), f"{field} is {what}; contains needs one piece of text, not {value!r}"
        elif enum is not None and (message := _unknown(field, enum, value)):
            yield ("value",), message
        return
    if op in ("in", "not_in"):
        if kind == "list":
            yield ("op",), f"{field} is {what}; {op} compares one value with each listed one: use contains"
            return
        options = value if isinstance(value, list) else [value]
        item_words = _KIND_WORDS.get(item_kind, (what, needs))[1]
        for i, option in enumerate(options):
            where: Path_ = ("value", i) if isinstance(value, list) else ("value",)
            if not _fits(item_kind, option):
                yield where, f"{field} is {what}; {op} needs a list of {_plural(item_words)}, not {value!r}"
            elif enum is not None and (message := _unknown(field, enum, option)):
                yield where, message
        return
    # eq / ne
    if not _fits(kind, value):
        yield ("value",), f"{field} is {what}; {op} needs {needs}, not {value!r}"
        return
    for i, item in enumerate(value if isinstance(value, list) else [value]):
        if enum is not None and (message := _unknown(field, enum, item)):
            yield (("value", i) if isinstance(value, list) else ("value",)), message


def _plural(words: str) -> str:
    """``a number`` → ``numbers``; ``a date (e.g. …)`` → ``dates (e.g. …)``; ``text`` stays."""
    if words.startswith("a "):
        head, _, rest = words[2:].partition(" ")
        return f"{head}s {rest}".rstrip()
    if words == "true or false":
        return "true or false values"
    return words


def leaves(cond: Condition, path: Path_) -> Iterator[tuple[Condition, Path_]]:
    """Every leaf test of ``cond`` (one with a field) with its path in the document."""
    if cond.field is not None:
        yield cond, path
    for key, children in (("all", cond.all), ("any", cond.any)):
        for i, child in enumerate(children or []):
            yield from leaves(child, (*path, key, i))
    if cond.not_ is not None:
        yield from leaves(cond.not_, (*path, "not"))


def condition_problems(cond: Condition | None, path: Path_, scopes: set[str], events: set[str],
                       known_tiers: Sequence[str]) -> list[tuple[Path_, str]]:
    """(document path, why) for every leaf of ``cond`` (found at ``path``) that names a field not
    there, or compares it with a value of the wrong type for its operator."""
    out: list[tuple[Path_, str]] = []
    if cond is None:
        return out
    for leaf, leaf_path in leaves(cond, path):
        assert leaf.field is not None and leaf.op is not None
        kind = catalogue.field_kind(leaf.field, scopes, events)
        if kind not in _KNOWN_KINDS:
            out.append(((*leaf_path, "field"), str(kind)))
            continue
        for where, message in leaf_problems(leaf.field, str(kind), leaf.op, leaf.value, known_tiers, events):
            out.append(((*leaf_path, *where), message))
    return out


def _codes(name: str, events: Collection[str]) -> list[str] | None:
    """The codes ``event.data.<name>`` takes by the words config/events.yaml gives it for every one of ``events``;
    None when a type gives it no words (its values are open)."""
    codes: set[str] = set()
    for event_type in events:
        words = words_of(event_type).get(name)
        if words is None:
            return None
        codes.update(TIERS if words == "tier" else PRODUCT_LINES if words == "product_line" else words)
    return sorted(codes) or None


def uncoded_values(cond: Condition | None, path: tuple[str | int, ...],
                   events: Collection[str]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(where, warning) for each code an event field is compared with that the words of its type do not
    have: ``direction: downgrade`` where tier.changed says ``up`` or ``down`` never matches, and says nothing.
    A warning, not a refusal: words name the codes a type is known to send, another may come."""
    if cond is None or not events:
        return
    for leaf, leaf_path in leaves(cond, path):
        if leaf.op not in ("eq", "ne", "in", "not_in") or not (leaf.field or "").startswith("event.data."):
            continue
        assert leaf.field is not None
        codes = _codes(leaf.field.removeprefix("event.data."), events)
        if codes is None:
            continue
        values = leaf.value if isinstance(leaf.value, list) else [leaf.value]
        for i, value in enumerate(values):
            if isinstance(value, str) and value not in codes:
                where = (*leaf_path, "value", i) if isinstance(leaf.value, list) else (*leaf_path, "value")
                verdict = "never holds" if leaf.op in ("eq", "in") else "always holds"
                yield where, (f"{value!r} is not a code of {leaf.field} ({', '.join(sorted(events))} sends "
                              f"{', '.join(codes)} by its words in config/events.yaml{nearest(value, codes)}), "
                              f"so '{leaf.op}' {verdict} for it; if another system sends {value!r}, "
                              "give it words there")
