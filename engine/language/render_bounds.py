"""What one template render may cost: the bounds ``engine.language.templates.TemplateSandbox`` applies.

Templates are untrusted (written by marketing ops), so a template must not be able to hang
``journeys validate``, a preview or a dispatch batch, nor take the machine's memory. Three
bounds, each refused with a ``SecurityError`` the renderer reports at the template's line:

- **Items per render** (``MAX_ITEMS``): every loop iteration (nested loops count each inner
  pass), every call (a macro's, a method's, ``caller()``), every ``range`` item and every
  repeated item (``"x" * n``) is charged to the render, so nesting or recursion cannot multiply
  its way past the bound.
- **Size of any value** (``MAX_VALUE`` characters or items, ``MAX_INT_BITS`` for a whole
  number): checked *before* an operation whose result grows with an argument (a width, a
  count, a format field's width, a replacement, a join) and after any other that builds a
  string or list, so no intermediate value is ever much larger than the bound.
- **Work per render** (``MAX_WORK``): what filters and string methods read, and every value
  an operator, literal, call or filter builds (its size as ``checked`` measures it), so a loop
  over a long text or list cannot redo linear work on it a hundred thousand times.

Besides these, a rendered message is at most ``MAX_OUTPUT`` characters, a power's exponent
and base at most ``MAX_EXPONENT`` (bits for the base), and calls and templates nest at most
``MAX_NESTING`` deep: a macro or ``caller()`` calling itself, a recursive loop or a template that
includes itself stops there with a refusal at its line, long before Python's own recursion limit,
which would otherwise end the render as a bare RecursionError wherever the stack ran out (in the
worker's own code too, when it was already deep).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar, Token
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace

MAX_VALUE = 100_000  # characters or items; the longest real message (an e-mail) is a few thousand
MAX_ITEMS = 100_000  # loop iterations, calls, range items and repetitions in one render
MAX_WORK = 1_000_000  # characters and items filters and string methods go through in one render
MAX_INT_BITS = 4_096  # a 64-bit number to the power 64; money and counts need a few dozen
MAX_OUTPUT = 100_000  # characters; the longest real message (an e-mail) is a few thousand
MAX_EXPONENT = 64
# Calls of template code and templates loaded into one another, each ~8 Python frames: 40 levels stay
# well inside Python's 1,000 from a worker's stack; real templates nest a handful.
MAX_NESTING = 40

_SIZED = (str, list, tuple, dict)
# What can hold other values and so repeat a list by holding it many times.
_NESTING = (list, tuple, dict, Namespace)


class _Spent:
    """What one render has spent so far."""

    items_spent = 0
    work_spent = 0
    nesting = 0


# The render under way in this thread (``collect_bounded`` sets it). A macro of an imported template
# runs in that template's own context, which Jinja caches across renders: charged there, its loops
# would fill a budget no render owns. Without a render under way, the evaluation context is charged.
_render: ContextVar[_Spent | None] = ContextVar("template_render", default=None)


def begin_render() -> Token[_Spent | None]:
    return _render.set(_Spent())


def end_render(token: Token[_Spent | None]) -> None:
    _render.reset(token)


def spend(eval_ctx: Any, amount: int, what: str) -> None:
    """Charge ``amount`` items to the render."""
    owner = _render.get() or eval_ctx
    spent = getattr(owner, "items_spent", 0) + amount
    if spent > MAX_ITEMS:
        raise SecurityError(f"{what} would take this render past {MAX_ITEMS:,} items (loop iterations, calls, "
                            "range items and repetitions, nested loops counting every inner pass)")
    owner.items_spent = spent


def work(eval_ctx: Any, amount: int, what: str) -> None:
    """Charge ``amount`` characters or items read or built by a filter or method to the render."""
    owner = _render.get() or eval_ctx
    spent = getattr(owner, "work_spent", 0) + amount
    if spent > MAX_WORK:
        raise SecurityError(f"{what} would take this render past {MAX_WORK:,} characters processed")
    owner.work_spent = spent


def enter_nested(eval_ctx: Any, what: str) -> Any:
    """One more level of calls and templates; returns what was charged, whose ``nesting`` the caller
    lowers again when the level ends (that same object: the level may end after the render did)."""
    owner = _render.get() or eval_ctx
    level = getattr(owner, "nesting", 0) + 1
    if level > MAX_NESTING:
        raise SecurityError(f"{what} would nest calls and templates deeper than {MAX_NESTING} levels (a macro, "
                            "caller() or recursive loop calling itself, directly or through another, or a "
                            "template including, importing or extending itself)")
    owner.nesting = level
    return owner


class NestingTemplate(jinja2.Template):
    """A template whose render is a level of nesting: an include, import or extends of itself stops at
    ``MAX_NESTING`` as a macro calling itself does."""

    @classmethod
    def _from_namespace(cls, environment: jinja2.Environment, namespace: Any, globals: Any) -> jinja2.Template:
        template = super()._from_namespace(environment, namespace, globals)
        root = template.root_render_func
        what = f"template {template.name!r}"

        def nested_root(context: Any) -> Iterator[str]:
            owner = enter_nested(context.eval_ctx, what)
            try:
                yield from root(context)
            finally:
                owner.nesting -= 1

        template.root_render_func = nested_root
        return template


def bounded_concat(parts: Iterable[str]) -> str:
    """The text a macro, caller(), block, ``{% set %}`` or ``{% filter %}`` block wrote (Jinja joins it with its
    environment's ``concat``), refused past ``MAX_VALUE`` before it is joined and charged as work.

    Joined unchecked, ``{% set ns.s %}{{ ns.s }}{{ ns.s }}{% endset %}`` doubled a text in a loop to 500
    million characters (800 MB) in 28 passes, and a loop in a macro wrote its text as many times as it ran."""
    written: list[str] = []
    size = 0
    for part in parts:
        size += len(part)
        if size > MAX_VALUE:
            raise SecurityError(f"a macro, block or set block would write over {MAX_VALUE:,} characters, the limit")
        written.append(part)
    render = _render.get()
    if render is not None:
        work(render, size, "a macro, block or set block")
    return "".join(written)


def size_of(value: Any) -> int:
    return len(value) if isinstance(value, _SIZED) else 0


def _children(value: Any) -> Sequence[Any]:
    if isinstance(value, dict):
        return [*value.keys(), *value.values()]
    if isinstance(value, Namespace):
        return list(object.__getattribute__(value, "_Namespace__attrs").values())
    return value


def expanded_size(value: Any, limit: int = MAX_VALUE) -> int:
    """How many items ``value`` has once written out, nested lists counted at every place they appear and
    the texts and long numbers it holds by their length.

    ``[a]*100`` holds one list a hundred times: its length is 100, but as text (``{{ e }}``, ``|tojson``,
    ``|string``) it is a hundred copies, and five such levels are 10**10 items from a few hundred
    repetitions. ``[s]*100`` with ``s`` a text of 65,536 characters (sixteen doublings) is 100 items but
    6.5 million characters as text. Each distinct list is walked once (sizes are kept by identity) and
    the walk stops past ``limit``, so the cost is at most ``limit`` steps. A list that holds itself
    counts its own place once.
    """
    sizes: dict[int, int] = {}
    open_ids: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            children = _children(node)
            total = len(children) + _written_length(children)
            for child in _nested(children):
                total += sizes.get(id(child), 0)
                if total > limit:
                    return total
            if total > limit:
                return total
            sizes[key] = total
            open_ids.discard(key)
            continue
        if key in sizes or key in open_ids:
            continue
        open_ids.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _nested(_children(node)))
    return sizes.get(id(value), 0)


def _nested(children: Any) -> Any:
    """The children that hold others. Most lists hold none, and their types are read without a Python loop
    over every item: a list of 65,000 numbers was a 35 ms walk at every ``+`` that made it."""
    if not any(issubclass(kind, _NESTING) for kind in set(map(type, children))):
        return ()
    return [child for child in children if isinstance(child, _NESTING)]


def _written_length(children: Any) -> int:
    """What the texts and the numbers past 64 bits among ``children`` add once written out, beyond an item
    each. Lists of small numbers, the common case, are read without a Python loop over every item."""
    kinds = set(map(type, children))
    if not any(issubclass(kind, str) for kind in kinds):
        if not any(issubclass(kind, int) for kind in kinds) or (
                kinds <= {int, bool} and max(map(int.bit_length, children), default=0) <= 64):
            return 0
    elif kinds <= {str}:
        return sum(map(len, children))
    total = 0
    for child in children:
        if isinstance(child, str):
            total += len(child)
        elif isinstance(child, int) and child.bit_length() > 64:
            total += child.bit_length() // 3
    return total


def checked(value: Any, what: str, eval_ctx: Any) -> Any:
    """``value`` if it is within the size bounds, else a SecurityError naming ``what`` made it.

    Its size is charged to the render as work: every value an operator, literal, call or filter builds
    is checked here, so building a large one over and over (``big + []``, ``s ~ ''``, a dict merge in a
    loop) stops at ``MAX_WORK`` as the filters' work does, and so does the cost of measuring it."""
    if isinstance(value, (*_SIZED, Namespace)):
        size = len(value) if isinstance(value, str) else expanded_size(value)
        if size > MAX_VALUE:
            kind = "namespace" if isinstance(value, Namespace) else "value"
            raise SecurityError(f"{what} makes a {kind} of {size:,} characters or items, over the "
                                f"{MAX_VALUE:,} limit (lists counted at every place they appear)")
        work(eval_ctx, size, what)
    elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise SecurityError(f"{what} makes a number over the {MAX_INT_BITS:,}-bit limit")
    return value


def refuse_over(predicted: int, what: str) -> None:
    """Refuse an operation before it runs when its result would be over ``MAX_VALUE``."""
    if predicted > MAX_VALUE:
        raise SecurityError(f"{what} would make a value of {predicted:,} characters, over the {MAX_VALUE:,} limit")


def check_numbers(args: Iterable[Any], what: str) -> None:
    """Width, count and size arguments: none over ``MAX_VALUE`` (``ljust(999999999)``, ``to_bytes``)."""
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_VALUE:
            raise SecurityError(f"{what}: argument {arg:,} is over the {MAX_VALUE:,} limit for widths, "
                                "counts and sizes")


def check_product(left: int, right: int) -> None:
    """Whole numbers multiplied: refused before the product would pass ``MAX_INT_BITS`` (repeated squaring)."""
    if left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise SecurityError(f"multiplication would make a number over the {MAX_INT_BITS:,}-bit limit")


# A printf field (``%-08.3f``, ``%(name)*d``) and the numbers in a ``str.format`` spec.
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
_DIGITS = re.compile(r"\d+")
_WIDE_FIELD = re.compile(r"\d{4}|\*")
_BRACE_FIELD = re.compile(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}")


def _widest(values: Iterable[Any]) -> tuple[int, int]:
    """The longest text among the values formatted, and the largest whole number (for ``*`` widths)."""
    longest = number = 0
    for value in values:
        if isinstance(value, str):
            longest = max(longest, len(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            number = max(number, abs(value))
            longest = max(longest, value.bit_length() // 3 + 2)
        else:
            longest = max(longest, 64)
    return longest, number


def format_values(args: Any) -> list[Any]:
    """What a ``%`` or ``format`` right-hand side supplies: a tuple's items, a mapping's values, or itself."""
    if isinstance(args, tuple | list):
        return list(args)
    if isinstance(args, Mapping):
        return list(args.values())
    return [args]


def check_percent_format(template: str, values: list[Any]) -> None:
    """``'%0999999999d' % 1`` and ``|format``: refused before the padding is allocated."""
    if len(template) <= 100 and not _WIDE_FIELD.search(template):
        # Widths under 1,000 in a short format (``'%.2f'``): the result is linear in the values, and
        # the operator's result check bounds it.
        return
    longest, number = _widest(values)
    predicted = len(template)
    for match in _PERCENT_FIELD.finditer(template):
        for part in match.group(1, 2):
            predicted += number if part == "*" else int(part) if part else 0
        predicted += longest if match.group(3) != "%" else 0
    refuse_over(predicted, "a % format")


def _largest_in_text(values: Iterable[Any]) -> int:
    """The largest number written in any text value: a nested ``{}`` field puts the text itself into the spec."""
    largest = 0
    for value in values:
        if isinstance(value, str):
            for digits in _DIGITS.findall(value):
                # Past nine digits the number is refused whatever it is; int() of it would cost time.
                largest = max(largest, int(digits) if len(digits) <= 9 else 10**9)
    return largest


def check_brace_format(template: str, values: list[Any]) -> None:
    """``'{0:>999999999}'.format(1)``: each field's widths (a nested ``{}`` one at the largest number given,
    as a number or written in a text, ``'{0:{1}}'.format(1, '999999999')``)."""
    longest, number = _widest(values)
    number = max(number, _largest_in_text(values))
    predicted = len(template)
    for match in _BRACE_FIELD.finditer(template):
        spec = match.group(0)
        predicted += longest + sum(int(d) for d in _DIGITS.findall(spec.partition(":")[2]))
        predicted += number * spec.count("{", 1)
    refuse_over(predicted, "str.format")


def check_replace(text: str, old: Any, new: Any, count: Any = -1) -> None:
    """``s.replace('', big)`` multiplies: the result's size, before it is built."""
    if not isinstance(old, str) or not isinstance(new, str):
        return
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    refuse_over(len(text) + found * max(len(new) - len(old), 0), "replace")


def check_join(separator: str, items: list[Any]) -> None:
    total = len(separator) * max(len(items) - 1, 0)
    for item in items:
        total += len(item) if isinstance(item, str) else 24
    refuse_over(total, "join")


def materialised(items: Any) -> Any:
    """A one-pass iterable (a ``map`` or ``select``) as a list, so a join's size can be known first."""
    if isinstance(items, _SIZED) or not isinstance(items, Iterable):
        return items
    return list(items)


def check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Size checks for the string methods whose result grows with an argument; returns the args to call
    with (a join's one-pass iterable made a list, as it is measured)."""
    if name == "replace" and len(args) >= 2:
        check_replace(text, *args[:3])
    elif name == "join" and args:
        args = (materialised(args[0]), *args[1:])
        if isinstance(args[0], _SIZED):
            check_join(text, list(args[0]))
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int):
            refuse_over(len(text) + text.count("\t") * size, "expandtabs")
    elif name == "translate" and args and isinstance(args[0], Mapping):
        # Each character may become a whole replacement text: ``('a'*50000).translate({97: 'x'*40000})``.
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        refuse_over(len(text) * max(longest, 1), "translate")
    elif name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        refuse_over(args[0], name)
    return args


# Filters with a width, count or length argument (``format``'s arguments are data, checked as a format).
_SIZED_BY_ARGUMENT = frozenset({"center", "indent", "wordwrap", "truncate", "batch", "slice", "replace", "join"})


def check_filter(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Size checks for the filters whose result grows with an argument (``args[0]`` is the value filtered);
    returns the args to call with (a join's one-pass iterable made a list)."""
    if name in _SIZED_BY_ARGUMENT:
        check_numbers((*args[1:], *kwargs.values()), f"filter {name!r}")
    value = args[0] if args else None
    if name == "join" and args:
        args = (materialised(value), *args[1:])
        separator = args[1] if len(args) > 1 else kwargs.get("d", "")
        if isinstance(args[0], _SIZED) and isinstance(separator, str) and not kwargs.get("attribute"):
            check_join(separator, list(args[0]))
    elif not isinstance(value, str):
        return args
    elif name == "indent":
        width = args[1] if len(args) > 1 else kwargs.get("width", 4)
        per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        refuse_over(len(value) + (value.count("\n") + 1) * per_line, "filter 'indent'")
    elif name == "wordwrap":
        width = args[1] if len(args) > 1 else kwargs.get("width", 79)
        wrap = args[3] if len(args) > 3 else kwargs.get("wrapstring") or "\n"
        lines = len(value) // max(width if isinstance(width, int) else 1, 1) + value.count(" ") + 1
        refuse_over(len(value) + lines * len(str(wrap)), "filter 'wordwrap'")
    elif name == "replace" and len(args) >= 3:
        check_replace(value, *args[1:4])
    elif name == "format":
        check_percent_format(value, format_values(kwargs or args[1:]))
    elif name == "center":
        refuse_over(args[1] if len(args) > 1 and isinstance(args[1], int) else 0, "filter 'center'")
    return args


MAX_JSON_INDENT = 8


def bounded_json_dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` for ``|tojson``, stopped past ``MAX_VALUE`` while it writes, with an indent of at most
    ``MAX_JSON_INDENT``. An indent repeats on every line at every level: ``([[1]]*1000)|tojson(indent=99999)``
    was 400 million characters (800 MB) before the result's check, from a value of a few thousand items."""
    indent = kwargs.get("indent")
    width = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
    if width > MAX_JSON_INDENT:
        raise SecurityError(f"filter 'tojson': an indent of {width:,} is over the limit of {MAX_JSON_INDENT}")
    parts: list[str] = []
    size = 0
    for chunk in json.JSONEncoder(**kwargs).iterencode(value):
        size += len(chunk)
        if size > MAX_VALUE:
            raise SecurityError(f"filter 'tojson' would make a value of over {MAX_VALUE:,} characters, the limit")
        parts.append(chunk)
    return "".join(parts)


# Filters that cost far more per character than a copy (urlize: about 30 us a word), what they read
# counting that many times as work: a 65,536-character text was seconds of urlize per call.
_WORK_WEIGHT = {"urlize": 50}


def bounded_filter(name: str, func: Callable[..., Any], kind: str = "filter") -> Callable[..., Any]:
    """``func`` (a filter or a test) with its size checks (``check_filter``), its reads charged as work, its
    result's size checked.

    The wrapper always takes the render's context (to charge the work) and hands the filter what it
    asked for (context, evaluation context, environment or nothing), so every Jinja filter keeps working.
    """
    wants = getattr(getattr(func, "jinja_pass_arg", None), "name", None)
    first: Callable[[Any], tuple[Any, ...]] = {
        "context": lambda context: (context,),
        "eval_context": lambda context: (context.eval_ctx,),
        "environment": lambda context: (context.environment,),
    }.get(wants or "", lambda context: ())
    # Only the filters with a width, count or size argument are checked before they run (cheaper).
    checks = name in _SIZED_BY_ARGUMENT or name == "format"
    what = f"{kind} {name!r}"
    weight = _WORK_WEIGHT.get(name, 1)

    def filtered(context: Any, *args: Any, **kwargs: Any) -> Any:
        if checks:
            args = check_filter(name, args, kwargs)
        # Every argument is read (a test's too: ``x is in big``), charged before the filter runs.
        work(context.eval_ctx, sum(map(size_of, args)) * weight, what)
        result = func(*first(context), *args, **kwargs)
        return checked(result, what, context.eval_ctx)

    filtered.__name__ = getattr(func, "__name__", name)
    filtered.__doc__ = func.__doc__
    return jinja2.pass_context(filtered)


def counted(eval_ctx: Any, iterable: Any) -> Any:
    """What a ``{% for %}`` (or a recursive ``loop(...)``) goes through, every iteration charged to the render.

    A sized iterable is charged whole on entry (a Jinja loop has no ``break``), which costs nothing
    per iteration; a one-pass one (``map``, ``select``) is charged as it goes."""
    try:
        size = len(iterable)
    except TypeError:
        return _charged(eval_ctx, iterable)
    spend(eval_ctx, size, "a loop")
    return iterable


def _charged(eval_ctx: Any, iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        spend(eval_ctx, 1, "a loop")
        yield item


@jinja2.pass_eval_context
def safe_range(eval_ctx: Any, *args: int) -> range:
    """The ``range`` global: its items charged to the render (with repetitions and loop iterations)."""
    result = range(*args)
    spend(eval_ctx, len(result), "range")
    return result


@jinja2.pass_eval_context
def counted_loop(eval_ctx: Any, iterable: Any) -> Any:
    """The filter every ``{% for %}`` goes through (``templates.LOOP_FILTER``): ``counted``."""
    return counted(eval_ctx, iterable)
