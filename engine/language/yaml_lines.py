"""YAML loading that remembers where every node stood, so errors can say ``file:line:col``.

Journey and settings files are written by people we do not control, so what one file can cost
is bounded before anything is built: its size, its nesting depth and its node count, and
aliases (``*name``) are refused, since re-expanding them is how a few hundred bytes become
gigabytes (a "billion laughs" file). Each limit is reported at the line where it is crossed.

Values are read by YAML's core schema only: text, numbers, true/false, null, lists and mappings. A
value that looks like a date stays text (YAML 1.1 would make ``name: 2026-02-30`` a date, and crash
on it), the fields that hold dates read it themselves; any other tag (``!!binary``, ``!!set``,
``!!timestamp``, ``!custom``) is refused, a number is at most ``MAX_NUMBER_CHARS`` long, and text
may not hold control characters or the bidirectional overrides that make a line display in
another order than it reads. Whatever a scalar holds, a failure to read it is a ``YamlError`` at
its line, never an exception of its own.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

MAX_BYTES = 256 * 1024  # the largest shipped journey is a few kilobytes
MAX_DEPTH = 64  # PyYAML composes recursively; 20,000 nested brackets overflow Python's stack
MAX_NODES = 20_000
MAX_NUMBER_CHARS = 40  # no setting needs more; Python refuses to read an int of 4,300 digits

_CORE = "tag:yaml.org,2002:"
SCALAR_TAGS = frozenset(_CORE + kind for kind in ("str", "int", "float", "bool", "null"))
NUMBER_TAGS = frozenset((_CORE + "int", _CORE + "float"))
MAPPING_TAG, SEQUENCE_TAG = _CORE + "map", _CORE + "seq"
# C0 and C1 controls but tab and line breaks, and the bidirectional embeddings, overrides and
# isolates ("Trojan Source"): text that shows one thing and says another.
FORBIDDEN_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class _CoreLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading plain scalars as YAML 1.2's core schema does, not as YAML 1.1.

    YAML 1.1 made ``on_event: yes`` and ``value: on`` switches, ``until: 10:00`` the number 600 (base
    60) and ``value: 010`` the number 8 (octal): a step id, a reply text or a time of day became
    something the author never wrote, refused with "got True" or compared as true in a condition. A
    date-like scalar stays text (no implicit timestamp). Explicit tags (``!!bool yes``) are as YAML 1.1.
    """


_CORE_RESOLVED = {_CORE + kind for kind in ("bool", "int", "float", "timestamp")}
_CoreLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in _CORE_RESOLVED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# The core schema's forms (YAML 1.2.2, 10.3.2); integers before floats, as ``10`` matches both.
_DECIMAL = re.compile(r"[-+]?[0-9]+")
for _tag, _pattern, _firsts in (
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    ("float", r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
     "-+.0123456789"),
):
    _CoreLoader.add_implicit_resolver(_CORE + _tag, re.compile(f"^(?:{_pattern})$"), list(_firsts))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    # PyYAML reads a leading 0 as octal (``010`` is 8); the core schema reads digits as decimal.
    text = loader.construct_scalar(node)
    if isinstance(text, str) and _DECIMAL.fullmatch(text):
        return int(text, 10)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_CoreLoader.add_constructor(_CORE + "int", _construct_int)


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class LocatedDocument:
    data: Any
    values: dict[Path_, Position] = field(default_factory=dict)  # where each value starts
    keys: dict[Path_, Position] = field(default_factory=dict)  # where each mapping key stands

    def position(self, path: Path_, prefer_key: bool = False) -> Position:
        """The closest known position for ``path`` (walking up to the parent when needed)."""
        probe = tuple(path)
        while True:
            table = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            for source in table:
                if probe in source:
                    return source[probe]
            if not probe:
                return Position(1, 1)
            probe = probe[:-1]


class YamlError(Exception):
    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _pos(node: yaml.Node | yaml.Event) -> Position:
    mark = node.start_mark
    return Position(mark.line + 1, mark.column + 1) if mark is not None else Position(1, 1)


def _line_col(text: str, offset: int) -> Position:
    """Where ``offset`` stands, counting lines as YAML and editors both do (LF, CRLF or CR)."""
    before = text[:offset]
    breaks = before.count("\n") + before.count("\r") - before.count("\r\n")
    return Position(breaks + 1, offset - (max(before.rfind("\n"), before.rfind("\r")) + 1) + 1)


# YAML 1.1 breaks lines at NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR too; editors show none there. One
# pasted from a web page or a word processor into a comment made the rest of the comment a line of
# YAML (a syntax error far from it), and every line number after it one more than the editor's.
_HIDDEN_BREAK = re.compile("[\x85\u2028\u2029]")


def _check_shape(text: str) -> None:
    """Walk the event stream (flat, no recursion, nothing built) and refuse what would be costly to build."""
    depth = nodes = 0
    # LibYAML's parser when present: the pure-Python scanner takes about a second on 20,000
    # nested brackets, the C one milliseconds; both report the same marks.
    for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if isinstance(event, yaml.AliasEvent):
            raise YamlError(f"YAML aliases (*{event.anchor}) are not supported; "
                            "write the value out", _pos(event))
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlError(f"YAML nested deeper than {MAX_DEPTH} levels", _pos(event))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_NODES:
                raise YamlError(f"YAML with more than {MAX_NODES:,} values; split the file", _pos(event))


def load_located(text: str) -> LocatedDocument:
    """Parse one YAML document; raise YamlError (with position) on syntax errors or duplicate keys."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlError(f"file larger than {MAX_BYTES // 1024} KB", Position(1, 1))
    if hidden := _HIDDEN_BREAK.search(text):
        char = hidden.group()
        raise YamlError(f"character U+{ord(char):04X} ({unicodedata.name(char, 'next line').lower()}) is not "
                        "allowed: YAML reads it as a line break where an editor shows none; use an ordinary "
                        "line break or delete it", _line_col(text, hidden.start()))
    try:
        loader = _CoreLoader(text)
    except yaml.reader.ReaderError as exc:
        # The reader checks the whole text up front (control characters) and knows only an offset.
        raise YamlError(f"YAML: character #x{exc.character:04x} is not allowed",
                        _line_col(text, exc.position)) from None
    try:
        try:
            _check_shape(text)
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise _syntax_error(text, exc) from None
        except yaml.YAMLError as exc:
            raise YamlError(f"YAML: {exc}", Position(1, 1)) from None
        doc = LocatedDocument(data=None)
        if node is None:
            return doc
        doc.data = _build(loader, node, (), doc)
        return doc
    finally:
        loader.dispose()


_OPEN_QUOTE = re.compile(r"""^\s*(?:-\s+)?(?:[^\s#'"][^#'"]*?:\s+|-\s+)?(["'])""")


def _unclosed_quote(line: str) -> str | None:
    """The quote character a line opens a scalar with and does not close, or None."""
    match = _OPEN_QUOTE.match(line)
    if match is None:
        return None
    quote, rest = match.group(1), line[match.end():]
    if quote == "'":
        return quote if rest.replace("''", "").count("'") == 0 else None
    return quote if re.sub(r'\\.', "", rest).count('"') == 0 else None


def _syntax_error(text: str, exc: yaml.MarkedYAMLError) -> YamlError:
    """The parser's error in words an author acts on, at the line where the mistake is."""
    mark = exc.problem_mark or exc.context_mark
    position = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
    lines = text.splitlines()
    if exc.context == "while scanning a quoted scalar" and exc.context_mark is not None:
        # PyYAML reads on to the end of the file; the string's start is where the author looks.
        start = exc.context_mark
        return YamlError("YAML syntax: unclosed quote: the string starting here has no closing quote",
                         Position(start.line + 1, start.column + 1))
    line = lines[position.line - 1] if 0 < position.line <= len(lines) else ""
    if "\t" in line[: len(line) - len(line.lstrip())]:
        return YamlError("YAML syntax: a tab indents this line; YAML indents with spaces only "
                         "(replace the tab with spaces)", Position(position.line, 1))
    for number, line in enumerate(lines[: position.line], start=1):
        quote = _unclosed_quote(line)
        if quote is not None:
            column = line.index(quote) + 1
            return YamlError(f"YAML syntax: unclosed quote: the string starting here has no closing {quote}",
                             Position(number, column))
    return YamlError(f"YAML syntax: {exc.problem or exc.context}", position)


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, doc: LocatedDocument) -> Any:
    doc.values[path] = _pos(node)
    if isinstance(node, yaml.MappingNode):
        if node.tag != MAPPING_TAG:
            raise _tag_error(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlError("YAML merge keys (<<) are not supported", _pos(key_node))
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("mapping keys must be plain scalars", _pos(key_node))
            key = _scalar(loader, key_node, "YAML key")
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                raise YamlError(f"duplicate key {key!r}", _pos(key_node))
            doc.keys[(*path, key)] = _pos(key_node)
            result[key] = _build(loader, value_node, (*path, key), doc)
        return result
    if isinstance(node, yaml.SequenceNode):
        if node.tag != SEQUENCE_TAG:
            raise _tag_error(node)
        return [_build(loader, child, (*path, i), doc) for i, child in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    return _scalar(loader, node, "YAML value")


def _shown_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


def _tag_error(node: yaml.Node) -> YamlError:
    return YamlError(f"YAML tag {_shown_tag(node.tag)} is not allowed: write plain text, numbers, true/false, "
                     "null, lists and mappings", _pos(node))


def _scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode, what: str) -> Any:
    """One scalar under the core schema, or a YamlError at its line saying why it cannot be read."""
    if node.tag not in SCALAR_TAGS:
        raise _tag_error(node)
    if node.tag in NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
        raise YamlError(f"{what}: a number of {len(node.value):,} characters (at most {MAX_NUMBER_CHARS}); "
                        "quote it if it is text", _pos(node))
    try:
        value = loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, ArithmeticError, LookupError, TypeError, AttributeError) as exc:
        # An explicit ``!!int abc`` or ``!!bool maybe`` fails inside PyYAML with whatever it raises.
        reason = _reason(exc) if isinstance(exc, yaml.YAMLError) else \
            str(exc).splitlines()[0] if isinstance(exc, ValueError) and str(exc) else ""
        raise YamlError(f"{what}: cannot read {node.value[:40]!r} as {_shown_tag(node.tag)}"
                        + (f" ({reason})" if reason else ""), _pos(node)) from None
    if isinstance(value, str) and (bad := FORBIDDEN_CHARACTERS.search(value)):
        char = bad.group()
        name = unicodedata.name(char, "a control character")
        raise YamlError(f"{what}: character U+{ord(char):04X} ({name.lower()}) is not allowed in text",
                        _pos(node))
    return value


def _reason(exc: yaml.YAMLError) -> str:
    """The error's one-line reason; its str() repeats the position over several lines."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        return exc.problem
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
