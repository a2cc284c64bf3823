"""Journey conditions: their meaning (a pure-Python reference evaluator and explainer) and
their translation into durable-rules expressions (``engine.planning.rules`` runs those).

A *fact* here is a flat dict from field path (``customer.tier``, ``policy.expiry_date``,
``event.data.nps``, ``customer.attributes.vip``) to a Python value; a path that is absent
or ``None`` is *missing*. Before anything is compared, values are normalised the same way
for both evaluators: dates and datetimes become epoch seconds (a date counts from its UTC
midnight), everything else stays as it is.

Semantics (both evaluators agree; ``tests/planning/test_planner.py`` and
``tests/language/test_missing_fields.py`` check it on sample facts):
- **a missing field has no value**, so it matches no value: a leaf that asks for a value
  (``eq in lt le gt ge contains within_last older_than within_next exists``) fails on it, and
  a leaf that asks for the absence of one (``ne not_in missing``) passes. ``ne`` is exactly
  ``not eq``, ``not_in`` exactly ``not in`` and ``missing`` exactly ``not exists``, whether
  the field is there or not. A record lacks a field when the source did not give it (a claim
  imported without a product line and without a policy; ``catalogue.OPTIONAL_FIELDS`` lists
  such fields, and ``journeys validate`` warns where a journey tests one);
- ``in`` / ``not_in`` compare against each listed value; ``contains`` is list membership
  for lists and substring for strings;
- ``within_last D``: the value lies in [now - D, now]; ``older_than D``: before now - D;
  ``within_next D``: in [now, now + D]. "now" is the moment being planned for (the
  touch's planned time), not the wall clock, so plans are reproducible. A date (no time of day)
  counts from midnight of that day in the customer's zone (``customer.timezone``), as a date
  entry does: from UTC midnight, a policy expiring 30 days ahead would be within 30 days for a
  customer in Shanghai and not for one in Auckland at the same local hour. A date given as ISO
  text (an attribute, a ``date`` or ``datetime`` field of an event, which arrive as JSON) is
  read as that date, as date anchors read it; other text has no date and fails.
- comparing values of unrelated types (a string with a number) fails, and ``ne`` between
  them passes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from engine.language import catalogue
from engine.language.durations import parse_duration
from engine.language.journey_model import DURATION_OPERATORS, Condition
from store.clock import known_zone, zone

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_seconds(value: date | datetime) -> float:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (moment - _EPOCH).total_seconds()
    return (datetime.combine(value, time(0), tzinfo=UTC) - _EPOCH).total_seconds()


def _iso_moment(text: str) -> date | None:
    try:
        return datetime.fromisoformat(text) if "T" in text or " " in text else date.fromisoformat(text)
    except ValueError:
        return None


def measured_from(raw: Any, fact: dict[str, Any]) -> float | None:
    """The epoch seconds a duration operator measures ``raw`` from (see the module docstring);
    None when it is no date or moment."""
    value = _iso_moment(raw) if isinstance(raw, str) else raw
    if not isinstance(value, date):
        return None
    tz = fact.get("customer.timezone")
    local = zone(tz) if isinstance(tz, str) and known_zone(tz) else UTC
    if isinstance(value, datetime):
        return epoch_seconds(value if value.tzinfo else value.replace(tzinfo=local))
    return epoch_seconds(datetime.combine(value, time(0), tzinfo=local))


def normalise(value: Any) -> Any:
    """The comparable form of a fact value (see module docstring)."""
    if isinstance(value, date):  # datetime is a date too
        return epoch_seconds(value)
    if isinstance(value, tuple | set | frozenset):
        return [normalise(v) for v in value]
    return value


def _field_kind(path: str) -> str:
    head, _, rest = path.partition(".")
    tables = {
        "customer": catalogue.CUSTOMER_FIELDS,
        "policy": catalogue.POLICY_FIELDS,
        "claim": catalogue.CLAIM_FIELDS,
        "event": catalogue.EVENT_FIELDS,
    }
    return str(tables.get(head, {}).get(rest, "any"))


def date_literal(value: Any) -> float | None:
    """A date literal's epoch seconds: a date or datetime (YAML reads an unquoted 2024-01-31 as
    one) or its ISO text; None for anything else (``journeys validate`` refuses that on a date
    field, since a number there would be taken for epoch seconds)."""
    if isinstance(value, date):
        return epoch_seconds(value)
    if not isinstance(value, str):
        return None
    try:
        parsed: date = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
    except ValueError:
        return None
    return epoch_seconds(parsed)


def normalise_operand(path: str, value: Any) -> Any:
    """A condition's literal, in the form the field's values take after ``normalise``."""
    kind = _field_kind(path)
    if isinstance(value, list):
        return [normalise_operand(path, v) for v in value]
    if isinstance(value, str) and kind in ("date", "datetime"):
        seconds = date_literal(value)
        return value if seconds is None else seconds
    return normalise(value)


def _comparable(a: Any, b: Any) -> bool:
    numeric = (int, float, bool)
    return (isinstance(a, numeric) and isinstance(b, numeric)) or (isinstance(a, str) and isinstance(b, str))


def leaf_result(cond: Condition, fact: dict[str, Any], now: float) -> bool:
    """Pass/fail of one ``{field, op, value}`` leaf over a fact (reference semantics)."""
    assert cond.field is not None and cond.op is not None
    raw = fact.get(cond.field)
    if cond.op == "exists":
        return raw is not None
    if cond.op == "missing":
        return raw is None
    if raw is None:
        return cond.op in ("ne", "not_in")  # no value: unequal to any, in no list
    v = normalise(raw)
    op = cond.op
    if op in DURATION_OPERATORS:
        start = measured_from(raw, fact)
        if start is None:
            return False
        span = parse_duration(str(cond.value)).total_seconds()
        age = now - start
        if op == "within_last":
            return 0 <= age <= span
        if op == "older_than":
            return age > span
        return -span <= age <= 0  # within_next
    c = normalise_operand(cond.field, cond.value)
    if op == "contains":
        if isinstance(v, list):
            return c in v
        return isinstance(v, str) and isinstance(c, str) and c in v
    if op in ("in", "not_in"):
        options = c if isinstance(c, list) else [c]
        hit = any(_comparable(v, o) and v == o for o in options)
        return hit if op == "in" else not hit
    if op in ("eq", "ne"):
        same = bool(v == c) if isinstance(v, list) else _comparable(v, c) and v == c
        return same if op == "eq" else not same
    if not _comparable(v, c):
        return False
    if op == "lt":
        return bool(v < c)
    if op == "le":
        return bool(v <= c)
    if op == "gt":
        return bool(v > c)
    return bool(v >= c)  # ge


def evaluate(cond: Condition | None, fact: dict[str, Any], now: float) -> bool:
    """Reference evaluation of a whole condition (no condition = true)."""
    if cond is None:
        return True
    if cond.field is not None:
        return leaf_result(cond, fact, now)
    if cond.all is not None:
        return all(evaluate(c, fact, now) for c in cond.all)
    if cond.any is not None:
        return any(evaluate(c, fact, now) for c in cond.any)
    assert cond.not_ is not None
    return not evaluate(cond.not_, fact, now)


@dataclass
class LeafExplanation:
    """One leaf of a condition as explain shows it."""

    field: str
    op: str
    expected: Any
    actual: Any
    passed: bool
    negated: bool = False  # under an odd number of ``not``

    def describe(self) -> str:
        expected = "" if self.op in ("exists", "missing") else f" {self.expected!r}"
        prefix = "not " if self.negated else ""
        return f"{prefix}{self.field} {self.op}{expected}"


def explain(cond: Condition | None, fact: dict[str, Any], now: float) -> list[LeafExplanation]:
    """Every leaf with the fact's actual value and whether the leaf itself passed."""
    out: list[LeafExplanation] = []

    def walk(c: Condition, negated: bool) -> None:
        if c.field is not None:
            actual = fact.get(c.field)
            out.append(LeafExplanation(c.field, str(c.op), c.value, _shown(actual), leaf_result(c, fact, now), negated))
            return
        for child in c.all or c.any or []:
            walk(child, negated)
        if c.not_ is not None:
            walk(c.not_, not negated)

    if cond is not None:
        walk(cond, False)
    return out


def _shown(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# --- translation to durable-rules --------------------------------------------------------------

_KEY_RE = re.compile(r"\W")


def fact_key(path: str) -> str:
    """The durable-rules message key for a field path (dots would mean nesting there)."""
    return _KEY_RE.sub("_", path.replace(".", "__"))


@dataclass(frozen=True)
class Leaf:
    """A leaf of the normalised condition tree the rules engine sees."""

    kind: str  # cmp | exists | flag | false
    key: str = ""
    op: str = ""  # eq ne lt le gt ge (cmp); "" otherwise
    value: Any = None
    positive: bool = True  # exists: True = present, False = absent; flag: expected truth


@dataclass(frozen=True)
class Node:
    kind: str  # and | or
    children: tuple[Any, ...]


_NEGATE = {"eq": "ne", "ne": "eq", "lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}


@dataclass
class CompiledCondition:
    """A condition lowered to what durable-rules can evaluate, plus how to build its messages.

    ``contains`` leaves become precomputed boolean flags in the message: durable-rules'
    ``allItems`` does not hold for an empty list and its regex dialect cannot safely express
    an arbitrary substring, so negating either would disagree with the reference semantics.
    Duration operators become numeric comparisons on an ``<key>__age`` value (now - value,
    in seconds) computed when the message is built. Presence of each field read travels as
    ``__has_<key>`` (see ``engine.planning.rules`` for why).
    """

    condition: Condition
    tree: Any
    digest: str
    fields: list[str] = field(default_factory=list)
    age_fields: list[str] = field(default_factory=list)
    flags: list[tuple[str, Condition]] = field(default_factory=list)

    def message(self, fact: dict[str, Any], now: float) -> dict[str, Any]:
        """The durable-rules message for one fact: only the fields this condition reads."""
        msg: dict[str, Any] = {}
        for path in self.fields:
            raw = fact.get(path)
            key = fact_key(path)
            msg["__has_" + key] = raw is not None
            if raw is not None:
                msg[key] = normalise(raw)
        for path in self.age_fields:
            start = measured_from(fact.get(path), fact)
            msg["__has_" + fact_key(path) + "__age"] = start is not None
            if start is not None:
                msg[fact_key(path) + "__age"] = now - start
        for key, leaf in self.flags:
            msg[key] = leaf_result(leaf, fact, now)
        return msg


def compile_condition(cond: Condition) -> CompiledCondition:
    digest = json.dumps(cond.model_dump(by_alias=True, exclude_none=True), sort_keys=True, default=str)
    compiled = CompiledCondition(cond, None, digest)
    compiled.tree = _lower(cond, False, compiled)
    compiled.fields = sorted(set(cond.fields()))
    return compiled


def _lower(cond: Condition, negate: bool, out: CompiledCondition) -> Any:
    if cond.field is not None:
        return _lower_leaf(cond, negate, out)
    if cond.not_ is not None:
        return _lower(cond.not_, not negate, out)
    children = tuple(_lower(c, negate, out) for c in (cond.all or cond.any or []))
    is_all = cond.all is not None
    # De Morgan: under negation, all ↔ any.
    return Node("and" if is_all != negate else "or", children)


def _lower_leaf(cond: Condition, negate: bool, out: CompiledCondition) -> Any:
    assert cond.field is not None and cond.op is not None
    key = fact_key(cond.field)
    op = cond.op
    absent = Leaf("exists", key, positive=False)
    present = Leaf("exists", key, positive=True)
    if op in ("exists", "missing"):
        want_present = (op == "exists") != negate
        return present if want_present else absent
    if op == "contains":
        flag_key = f"__leaf{len(out.flags)}"
        out.flags.append((flag_key, cond))
        return Leaf("flag", flag_key, positive=not negate)
    if op in DURATION_OPERATORS:
        if cond.field not in out.age_fields:
            out.age_fields.append(cond.field)
        span = parse_duration(str(cond.value)).total_seconds()
        age = key + "__age"
        if op == "within_last":
            inside: Any = Node("and", (Leaf("cmp", age, "ge", 0.0), Leaf("cmp", age, "le", span)))
            outside: Any = Node("or", (Leaf("cmp", age, "lt", 0.0), Leaf("cmp", age, "gt", span)))
        elif op == "older_than":
            inside, outside = Leaf("cmp", age, "gt", span), Leaf("cmp", age, "le", span)
        else:
            inside = Node("and", (Leaf("cmp", age, "le", 0.0), Leaf("cmp", age, "ge", -span)))
            outside = Node("or", (Leaf("cmp", age, "gt", 0.0), Leaf("cmp", age, "lt", -span)))
        # A leaf on a field with no date (missing, or text that is no date) fails, so its negation
        # passes: hence "no age or ...".
        return Node("or", (Leaf("exists", age, positive=False), outside)) if negate else inside
    value = normalise_operand(cond.field, cond.value)
    if op in ("in", "not_in"):
        # "in" needs a value among the options; "not_in" is its exact negation, so a field with
        # no value is in no list.
        options = value if isinstance(value, list) else [value]
        if options:
            one_of: Any = Node("and", (present, Node("or", tuple(Leaf("cmp", key, "eq", o) for o in options))))
            none_of: Any = Node("or", (absent, Node("and", tuple(Leaf("cmp", key, "ne", o) for o in options))))
        else:
            one_of, none_of = Leaf("false"), Node("or", (absent, present))
        return one_of if (op == "in") != negate else none_of
    if op in ("eq", "ne"):
        # "ne" is "not eq": it holds on a field with no value, "eq" never does.
        equal: Any = Node("and", (present, Leaf("cmp", key, "eq", value)))
        unequal: Any = Node("or", (absent, Leaf("cmp", key, "ne", value)))
        return equal if (op == "eq") != negate else unequal
    if negate:
        return Node("or", (absent, Leaf("cmp", key, _NEGATE[op], value)))
    return Leaf("cmp", key, op, value)
