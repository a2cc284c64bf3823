"""The records of an import file, read so that a broken record costs its own line, not the file.

The rules are RFC 4180's: a field is either plain, with no quote in it, or quoted from its first
character to a closing quote followed by a comma or the end of the line, a quote inside it written
twice (``""``); a quoted field may run over lines.

The csv module cannot go back. A quote opened and never closed takes every later row into one
field, and (strict) then refuses the file at its end; a stray quote in the middle of a plain field
goes into the value without a word. Here a record that breaks a rule is given with its first line
and what is wrong, and reading goes on at the line after that first line, so that what the broken
record seemed to take in is read as the rows it is.

A stray opening quote can also end up closed by a quote further down, and then the lines between
look like one long quoted field. So a record that runs over lines is weighed against the other
reading, its first line broken and the next ones read afresh, up to where the two readings meet
again: the one with fewer faulty records wins (``_stray``). A genuine value over lines (a note in
an ``attr.*`` column) costs the other reading its continuation lines and so stays one record; so
does a name with a line break, a bad row of its own.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

# The longest line read: no good row comes near it (a cell is at most 10,000 characters and a row has
# some 160 columns at most). A longer line is a bad row; it is read in pieces and only this much of it
# kept, so a file of one unbroken gigabyte costs this much memory, not gigabytes.
MAX_LINE = 4 * 1024 * 1024
# How far a quoted field may run before it is taken for a quote that is never closed: as far as a line,
# and the lines it took in are read again, so it also bounds what is held in memory for one record.
READ_LIMIT = MAX_LINE
NOT_CSV = "not valid CSV: "
_HINT = '(a quote inside a value is written twice, "", in a field that starts with a quote)'
# What is wrong where a record breaks a rule: on the record's one line, and read on over lines.
NEVER_CLOSED, AFTER_CLOSING, INSIDE_PLAIN, TOO_LONG, STRAY = "never", "after", "inside", "long", "stray"
_ON_ITS_LINE = {
    NEVER_CLOSED: "a quote opens a field that is never closed",
    AFTER_CLOSING: f"text after the quote that closes a field {_HINT}",
    INSIDE_PLAIN: f"a quote inside a field that does not start with one {_HINT}",
}
_OPEN = "a quote opens a field that is not closed on its line"
_READ_ON = {
    NEVER_CLOSED: f"{_OPEN}, nor on any line after it",
    AFTER_CLOSING: _OPEN + " (read on, it would be closed on line {last} with text after the quote)",
    INSIDE_PLAIN: _OPEN + " (read on, line {last} would have a quote inside a field that does not start with one)",
    TOO_LONG: f"{_OPEN} (read on, it would run past {READ_LIMIT >> 20} MiB)",
    STRAY: _OPEN + " (read on to line {last}, it would take in what reads better as rows of their own)",
}
LINE_TOO_LONG = f"the line is longer than {MAX_LINE >> 20} MiB; no row is near that long"

_BOM = "\ufeff"
_PLAIN_END = re.compile(r'[,"\r\n]')
_LINE_END = "\r\n"

Line = tuple[int, str]  # (number, text with its line break)


@dataclass(frozen=True)
class Record:
    """One record: the line it starts on (1 = the file's first), its fields, and why it is not
    well-formed CSV if it is not; a broken record's fields are its first line cut at the commas, so
    that the rejects file shows the quote where it stood."""

    line: int
    fields: list[str]
    problem: str | None = None


class _Lines:
    """The file's lines with their numbers; the lines a broken record took in go back to be read again."""

    def __init__(self, handle: Iterable[str]) -> None:
        self._source = iter(handle)
        self._again: deque[Line] = deque()
        self._count = 0

    def next(self) -> Line | None:
        if self._again:
            return self._again.popleft()
        text = next(self._source, None)
        if text is None:
            return None
        self._count += 1
        if self._count == 1:
            # A byte order mark is no part of the first column's name, whatever encoding was named: a
            # spreadsheet's UTF-8 CSV starts with one, and ``--encoding utf-8`` (or gb18030) kept it.
            text = text.removeprefix(_BOM)
        return self._count, text

    def put_back(self, lines: list[Line]) -> None:
        self._again.extendleft(reversed(lines))


_NO_MORE = _Lines(())


def _bounded(handle: TextIO) -> Iterator[str]:
    """The handle's lines, each with its line break, but a line of ``MAX_LINE`` characters or more is
    cut there (without its break) and the rest of it read and dropped."""
    pending: str | None = None
    while True:
        text, pending = (pending, None) if pending is not None else (handle.readline(MAX_LINE), None)
        if not text:
            return
        if len(text) < MAX_LINE or text.endswith("\n"):
            yield text
            continue
        yield text.rstrip("\r")
        # The limit can fall between the CR and LF of one break: a lone "\n" after a CR is its end.
        after_cr = text.endswith("\r")
        while more := handle.readline(MAX_LINE):
            if after_cr:
                pending = None if more == "\n" else more
                break
            if len(more) < MAX_LINE or more.endswith("\n"):
                break
            after_cr = more.endswith("\r")


def _record(first: Line, lines: _Lines) -> tuple[list[str], list[Line], str | None]:
    """The fields of the record starting at ``first``, the lines it took (``first`` included), and
    what is wrong with it if anything (a code of ``_ON_ITS_LINE``, ``_READ_ON``). A quoted field
    that is not closed on its line takes the next ones from ``lines``."""
    text = first[1]
    if '"' not in text:  # nearly every line: no quote, no field running on
        return text.rstrip(_LINE_END).split(","), [first], None
    taken = [first]
    fields: list[str] = []
    pos = 0
    while True:
        if text.startswith('"', pos):
            start = seek = pos + 1
            while True:
                close = text.find('"', seek)
                if close == -1:
                    more = lines.next()
                    if more is None:
                        return fields, taken, NEVER_CLOSED
                    if len(text) - start > READ_LIMIT:
                        return fields, [*taken, more], TOO_LONG
                    taken.append(more)
                    seek = len(text)
                    text += more[1]
                elif text.startswith('"', close + 1):
                    seek = close + 2
                else:
                    break
            fields.append(text[start:close].replace('""', '"'))
            pos = close + 1
            # A line keeps its break, so what follows the closing quote in the last line taken is a
            # comma, the line break, or nothing at all at the end of the file.
            if pos == len(text) or text[pos] in _LINE_END:
                return fields, taken, None
            if text[pos] != ",":
                return fields, taken, AFTER_CLOSING
            pos += 1
        else:
            found = _PLAIN_END.search(text, pos)
            end = found.start() if found else len(text)
            fields.append(text[pos:end])
            if found is None or text[end] in _LINE_END:
                return fields, taken, None
            if text[end] == '"':
                return fields, taken, INSIDE_PLAIN
            pos = end + 1


def _problem(code: str, taken: list[Line]) -> str:
    if len(taken) == 1:
        return NOT_CSV + _ON_ITS_LINE[code]
    return NOT_CSV + _READ_ON[code].format(last=taken[-1][0])


class _Ahead:
    """Lines read ahead of ``lines`` to try a second reading; they all go back to ``lines`` after."""

    def __init__(self, lines: _Lines) -> None:
        self._lines = lines
        self.held: list[Line] = []

    def get(self, index: int) -> Line | None:
        while len(self.held) <= index:
            line = self._lines.next()
            if line is None:
                return None
            self.held.append(line)
        return self.held[index]


class _Cursor(_Lines):
    """``first`` and then the lines held ahead, for one of the two readings."""

    def __init__(self, first: list[Line], ahead: _Ahead) -> None:
        self._first = deque(first)
        self._ahead = ahead
        self._index = 0

    def next(self) -> Line | None:
        if self._first:
            return self._first.popleft()
        line = self._ahead.get(self._index)
        self._index += 1
        return line

    def put_back(self, lines: list[Line]) -> None:
        self._first.extendleft(reversed(lines))


_END = 1 << 62  # where a reading that has reached the end of the file stands
_LOOK_AHEAD = 200  # records per reading compared, at most, before the two are taken as they stand


class _Reading:
    """How many records of one reading are faulty, up to the line it has reached."""

    def __init__(self, lines: _Lines, columns: list[str], takes_breaks: Callable[[str], bool]) -> None:
        self.lines, self.columns, self.takes_breaks = lines, columns, takes_breaks
        self.faults = 0
        self.at = 0  # the line its next record starts on

    def step(self) -> bool:
        """Reads the next record as ``read_records`` would, but for the weighing of readings: one
        over lines that is faulty costs its first line only, and reading goes on at the next."""
        first = self.lines.next()
        if first is None:
            self.at = _END
            return False
        fields, taken, code = _record(first, self.lines)
        faulty = _faulty(fields, taken, code, self.columns, self.takes_breaks)
        if faulty and len(taken) > 1:
            self.lines.put_back(taken[1:])
            taken = taken[:1]
        self.faults += faulty
        self.at = taken[-1][0] + 1
        return True


def _faulty(fields: list[str], taken: list[Line], code: str | None, columns: list[str],
            takes_breaks: Callable[[str], bool]) -> bool:
    """A record no good row can come of: not well-formed, not the header's width, a line break inside
    a column that takes none, or a line taken in that is on its own a well-formed row."""
    if code is not None:
        return True
    if not any(cell.strip() for cell in fields):
        return False  # a blank line, which is no row
    if len(fields) != len(columns):
        return True
    if len(taken) == 1:
        return False
    if any(not takes_breaks(column) and any(c in cell for c in _LINE_END)
           for column, cell in zip(columns, fields, strict=True)):
        return True
    for line in taken[1:]:
        alone, _, problem = _record(line, _NO_MORE)
        if problem is None and len(alone) == len(columns):
            return True
    return False


def _stray(fields: list[str], taken: list[Line], lines: _Lines, columns: list[str],
           takes_breaks: Callable[[str], bool]) -> bool:
    """Whether the quote that makes this record run over lines is better taken for a stray one.

    Two readings are compared up to the first line where both start a record: this record and what
    follows it, against its first line alone as broken and the lines after it read afresh. The one
    with fewer faulty records wins. A genuine value over lines makes the lines it takes in faulty when
    read on their own (a continuation, then the rest after its closing quote), so it keeps its record;
    a stray quote's record is faulty itself, or leaves faulty lines after it. On a tie the record
    stays as the file has it: then the two readings are mirror images (a later value that starts
    with a quote and a line break, closing the stray one), and no count tells them apart.
    """
    ahead = _Ahead(lines)
    kept = _Reading(_Cursor([], ahead), columns, takes_breaks)
    kept.faults, kept.at = _faulty(fields, taken, None, columns, takes_breaks), taken[-1][0] + 1
    stray = _Reading(_Cursor(taken[1:], ahead), columns, takes_breaks)
    stray.faults, stray.at = 1, taken[1][0]
    for _ in range(2 * _LOOK_AHEAD):
        if kept.at == stray.at:
            break
        behind = stray if stray.at < kept.at else kept
        if not behind.step():
            behind.at = _END
    lines.put_back(ahead.held)
    return stray.faults < kept.faults


def read_records(path: Path, encoding: str, takes_breaks: Callable[[str], bool] = lambda _: False,
                 ) -> Iterator[Record]:
    """Every record of the file, the header first; see the module doc for a broken one.
    ``takes_breaks``: whether a column (its name as the header gives it, trimmed, lower case) may
    hold a line break, which tells a value over lines from a stray quote."""
    with path.open(newline="", encoding=encoding) as handle:
        lines = _Lines(_bounded(handle))
        columns: list[str] | None = None  # the header's, once read
        while (first := lines.next()) is not None:
            if len(first[1]) >= MAX_LINE - 1:  # cut (``_bounded``)
                yield Record(first[0], first[1].split(","), LINE_TOO_LONG)
                continue
            fields, taken, code = _record(first, lines)
            problem = _problem(code, taken) if code else None
            if (problem is None and len(taken) > 1 and columns is not None
                    and _stray(fields, taken, lines, columns, takes_breaks)):
                problem = NOT_CSV + _READ_ON[STRAY].format(last=taken[-1][0])
            if problem is not None:
                lines.put_back(taken[1:])
                yield Record(first[0], first[1].rstrip(_LINE_END).split(","), problem)
                continue
            if columns is None:
                columns = [name.strip().lower() for name in fields]
            yield Record(first[0], fields)
