"""YAML loading that remembers where every node stood, so errors can say ``file:line:col``.

Journey and settings files are written by people we do not control, so what one file can cost
is bounded before anything is built: its size, its nesting depth and its node count, and
aliases (``*name``) are refused, since re-expanding them is how a few hundred bytes become
gigabytes (a "billion laughs" file). Each limit is reported at the line where it is crossed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

MAX_BYTES = 256 * 1024  # the largest shipped journey is a few kilobytes
MAX_DEPTH = 64  # PyYAML composes recursively; 20,000 nested brackets overflow Python's stack
MAX_NODES = 20_000


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
    before = text[:offset]
    return Position(before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)


def _check_shape(text: str) -> None:
    """Walk the event stream (flat, no recursion, nothing built) and refuse what would be costly to build."""
    depth = nodes = 0
    # LibYAML's parser when present: the pure-Python scanner takes about a second on 20,000
    # nested brackets, the C one milliseconds; both report the same marks.
    for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if isinstance(event, yaml.AliasEvent):
            raise YamlError(f"YAML aliases (*{event.anchor}) are not supported in journey files; "
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
    try:
        loader = yaml.SafeLoader(text)
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
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlError("YAML merge keys (<<) are not supported in journey files", _pos(key_node))
            try:
                key = loader.construct_object(key_node, deep=True)
            except yaml.YAMLError as exc:  # a tagged key (``!!python/object: x``) is as bad as a tagged value
                raise YamlError(f"YAML key: {_reason(exc)}", _pos(key_node)) from None
            if not isinstance(key, str | int | float | bool):
                raise YamlError("mapping keys must be plain scalars", _pos(key_node))
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                raise YamlError(f"duplicate key {key!r}", _pos(key_node))
            doc.keys[(*path, key)] = _pos(key_node)
            result[key] = _build(loader, value_node, (*path, key), doc)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, child, (*path, i), doc) for i, child in enumerate(node.value)]
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise YamlError(f"YAML value: {_reason(exc)}", _pos(node)) from None


def _reason(exc: yaml.YAMLError) -> str:
    """The error's one-line reason; its str() repeats the position over several lines."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        return exc.problem
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
