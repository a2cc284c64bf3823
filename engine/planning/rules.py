"""The one module that talks to durable-rules, and the one place its quirks are handled.

Quirks (measured, see the project notes):
- It segfaults once a few thousand sessions (``sid``) are alive in one process, so every
  fact gets a fresh sid and ``delete_state`` is called right after it is evaluated: at most
  one session is ever alive.
- A fact that matches no rule raises ``MessageNotHandledException``, meant as "the condition
  does not hold". Measured here, that path corrupts the heap of this (2020, unmaintained) C
  extension: ``free(): invalid pointer``, segfaults or hangs within a few facts. So it is never
  taken: each ruleset has a catch-all rule at lower priority and every message is handled.
  The exception is still caught, should it ever be raised.
- Rulesets are global, named and cannot be redefined, so each distinct condition is
  compiled into a ruleset once per process (keyed by its canonical JSON) and reused.
- Its JSON reader takes no number written with an exponent (Python writes ``1e-07``, ``1e+16``,
  ``inf``): such a message fails inside the extension (then as "Could not delete state, error
  code: 309") and would leave the customer out of the plan. A fact holding such a number, or an
  integer past what a double holds exactly, is judged by the reference evaluator instead
  (``engine.language.conditions.evaluate``; the two agree by design and by test).
- It is a C extension with global state and no documented thread safety: a lock serialises
  evaluations (the web layer may call ``emit_event`` from several threads).
- Its host runs a background dispatch loop for timers and queued actions that starts two
  new threads per ruleset every 0.2 s and calls into the extension from them, outside any
  lock of ours. Nothing here uses timers or queues (``post`` runs the actions before it
  returns), so the host is created without that loop (``_Host``): on a 1M-customer plan the
  loop's thread churn cost about 5% of the CPU and stole the GIL from the planning thread.

Throughput is about 40-50k facts/s on one core. The planner therefore lets SQL narrow the
candidates first (tier, due window, consent) and only posts facts for journeys that have a
condition at all; a journey whose audience is just a tier list never reaches this module.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Sequence
from typing import Any

import durable.lang
from durable.engine import Host, MessageNotHandledException
from durable.lang import delete_state, m, post, pri, ruleset, when_all

from engine.language.conditions import CompiledCondition, Leaf, Node, compile_condition, evaluate
from engine.language.journey_model import Condition


class _Host(Host):
    """durable-rules' host without its background dispatch loop (see the module notes)."""

    def _run(self) -> None:
        return None


# ``durable.lang`` creates its host on first use; give it ours before that happens.
if durable.lang._main_host is None:
    durable.lang._main_host = _Host()

_lock = threading.Lock()
_sids = itertools.count(1)
_rulesets: dict[str, str] = {}  # condition digest → ruleset name
_compiled: dict[str, CompiledCondition] = {}
# Ids of the messages whose rule fired, per ruleset; filled by the rule actions during post().
_fired: dict[str, set[int]] = {}


def _expression(node: Any) -> Any:
    if isinstance(node, Node):
        parts = [_expression(c) for c in node.children]
        expr = parts[0]
        for part in parts[1:]:
            expr = (expr & part) if node.kind == "and" else (expr | part)
        return expr
    assert isinstance(node, Leaf)
    if node.kind == "false":
        # Every message carries _ALWAYS = 1, so this never holds.
        return getattr(m, _ALWAYS) == 0
    attr = getattr(m, node.key)
    if node.kind == "exists":
        # Presence travels as an explicit boolean (see CompiledCondition.message): the
        # engine's own $ex/$nex operators hang when combined under an "or".
        return getattr(m, "__has_" + node.key) == node.positive
    if node.kind == "flag":
        return attr == node.positive
    ops = {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
    }
    return ops[node.op](attr, node.value)


_ALWAYS = "__always"


def _ignore(c: Any) -> None:
    """The catch-all rule's action: the condition did not hold."""


def _recorder(hits: set[int]) -> Any:
    # durable-rules passes a completion callback as a second argument to any action that
    # accepts one, so the action must take exactly one parameter (no defaults).
    def _holds(c: Any) -> None:
        hits.add(int(c.m.id))

    return _holds


# Condition objects already compiled, by identity (the object is kept alive here so its id
# cannot be reused); canonical JSON is only computed the first time an object is seen.
_by_object: dict[int, tuple[Condition, CompiledCondition]] = {}
# Outcome per distinct message, per ruleset. The rule sees nothing but the message, so two
# equal messages always get the same answer; a book has few distinct ones per condition (a
# branch on the tier has five), so this divides the work for durable-rules by orders of
# magnitude. Bounded: cleared when it grows past _MEMO_LIMIT entries.
_memo: dict[str, dict[tuple[Any, ...], bool]] = {}
_MEMO_LIMIT = 200_000


def _memo_key(msg: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in msg.items()))


# Outcome per distinct tuple of raw field values, per ruleset, for conditions whose message
# does not depend on "now" (no duration operator): building and sorting the message costs
# more than the answer when the same few values come back for every customer. Values are
# tagged with their type so that True and 1 (equal in Python) stay apart.
_raw_memo: dict[str, dict[tuple[Any, ...], bool]] = {}


def _raw_key(fields: list[str], fact: dict[str, Any]) -> tuple[Any, ...]:
    key: list[Any] = []
    for path in fields:
        v = fact.get(path)
        if isinstance(v, list | tuple | set | frozenset):
            v = (type(v), tuple((type(x), x) for x in v))
        key.append((type(v), v))
    return tuple(key)


def compiled(cond: Condition) -> CompiledCondition:
    """The compiled form of ``cond``, its durable-rules ruleset created on first use."""
    known = _by_object.get(id(cond))
    if known is not None and known[0] is cond:
        return known[1]
    comp = _compiled_by_digest(cond)
    _by_object[id(cond)] = (cond, comp)
    return comp


def _compiled_by_digest(cond: Condition) -> CompiledCondition:
    digest = hashlib.sha1(compile_condition(cond).digest.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]
    found = _compiled.get(digest)
    if found is not None:
        return found
    with _lock:
        found = _compiled.get(digest)
        if found is not None:
            return found
        comp = compile_condition(cond)
        name = f"sj_{digest}"
        hits: set[int] = set()
        _fired[name] = hits
        with ruleset(name):
            when_all(pri(1), _expression(comp.tree))(_recorder(hits))
            # Every message must be handled by some rule: in this build the
            # MessageNotHandledException path corrupts the heap (free(): invalid pointer,
            # segfaults or hangs a few facts later). A catch-all at lower priority takes
            # whatever the condition rule leaves; durable-rules consumes a message with the
            # first action that runs, so it never steals a message the condition matched.
            when_all(pri(2), getattr(m, _ALWAYS) == 1)(_ignore)

        _rulesets[comp.digest] = name
        _compiled[digest] = comp
        comp.digest = name  # from now on the digest field names the ruleset
        return comp


_EXACT_INT = 2**53


def _readable_by_durable(value: Any) -> bool:
    """Whether durable-rules reads every number in ``value`` as the number it is (see the module notes)."""
    if isinstance(value, bool):
        return True
    if isinstance(value, float):
        return "e" not in repr(value) and "n" not in repr(value)  # 1e-07, inf, nan
    if isinstance(value, int):
        return -_EXACT_INT <= value <= _EXACT_INT
    if isinstance(value, dict):
        return all(_readable_by_durable(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_readable_by_durable(v) for v in value)
    return True


def evaluate_many(cond: Condition | None, facts: Sequence[dict[str, Any]], nows: Sequence[float]) -> list[bool]:
    """Whether ``cond`` holds for each fact (``nows[i]``: the moment fact i is judged at, epoch s)."""
    if cond is None:
        return [True] * len(facts)
    comp = compiled(cond)
    name = comp.digest
    hits = _fired[name]
    out: list[bool] = []
    memo = _memo.setdefault(name, {})
    raw_memo = _raw_memo.setdefault(name, {}) if not comp.age_fields else None
    with _lock:
        for fact, now in zip(facts, nows, strict=True):
            raw_key = None
            if raw_memo is not None:
                try:
                    raw_key = _raw_key(comp.fields, fact)
                    known = raw_memo.get(raw_key)
                except TypeError:  # an unhashable value (a dict): go by the message
                    raw_key = known = None
                if known is not None:
                    out.append(known)
                    continue
                if len(raw_memo) >= _MEMO_LIMIT:
                    raw_memo.clear()
            msg = comp.message(fact, now)
            if not _readable_by_durable(msg):
                out.append(evaluate(cond, fact, now))
                continue
            key = _memo_key(msg)
            known = memo.get(key)
            if known is not None:
                if raw_key is not None and raw_memo is not None:
                    raw_memo[raw_key] = known
                out.append(known)
                continue
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            sid = str(next(_sids))
            msg["sid"] = sid
            msg["id"] = int(sid)
            msg[_ALWAYS] = 1
            try:
                post(name, msg)
            except MessageNotHandledException:
                pass  # no rule fired: the condition does not hold
            finally:
                delete_state(name, sid)
            fired = int(sid) in hits
            hits.discard(int(sid))
            memo[key] = fired
            if raw_key is not None and raw_memo is not None:
                raw_memo[raw_key] = fired
            out.append(fired)
    return out


def holds(cond: Condition | None, fact: dict[str, Any], now: float) -> bool:
    return evaluate_many(cond, [fact], [now])[0]
