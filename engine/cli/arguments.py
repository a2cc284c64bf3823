"""Checks every command makes of what it is given before it starts work: output paths and periods.

One place, so that every command that writes a file or takes a period refuses a mistake the same
way: one line on stderr naming the option, exit code 2, never a traceback after minutes of work.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

from engine.cli.output import fail


def _can_write_in(folder: Path, option: str) -> None:
    """Create and remove a file in ``folder``: the only sure test (a folder can look writable and not
    be, as /proc is to root, or be on a read-only mount)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".journeys-check-"):
            pass
    except OSError as exc:
        raise fail(f"{option}: cannot write in {folder} ({exc.strerror or exc})") from None


def output_file(path: Path, option: str, suffix: str | None = None) -> Path:
    """``path`` as a file the command may write (or overwrite): its folder must exist and take files.
    ``suffix`` (".png"): the kind of file written, which the name must say (a chart library picks
    the format by it, and would add its own to a name without one)."""
    if path.is_dir():
        raise fail(f"{option}: {path} is a folder; give a file name")
    if suffix is not None and path.suffix.lower() != suffix:
        raise fail(f"{option}: {path} must end in {suffix} (the file written is {suffix[1:].upper()})")
    folder = path.parent
    if not folder.is_dir():
        raise fail(f"{option}: the folder {folder} does not exist")
    _can_write_in(folder, option)
    if path.exists():
        try:
            with path.open("ab"):  # opening to append changes nothing in it
                pass
        except OSError as exc:
            raise fail(f"{option}: cannot write {path} ({exc.strerror or exc})") from None
    return path


def output_folder(path: Path, option: str) -> Path:
    """``path`` as a folder the command may write files into, made (with its parents) if missing."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise fail(f"{option}: {path} is a file, not a folder") from None
    except OSError as exc:
        raise fail(f"{option}: cannot make the folder {path} ({exc.strerror or exc})") from None
    _can_write_in(path, option)
    return path


@contextmanager
def writing(option: str, path: Path) -> Iterator[None]:
    """What the checks above cannot foresee (the disk fills, the folder goes) still ends in one line."""
    try:
        yield
    except OSError as exc:
        raise fail(f"{option}: writing {path} failed ({exc.strerror or exc})") from None


# The largest row id SQLite and PostgreSQL hold (a signed 64-bit integer): a larger id names no row.
LARGEST_ROW_ID = 2**63 - 1


def period(start: datetime, end: datetime, given: tuple[str, str, str, str],
           max_days: int | None = None) -> tuple[datetime, datetime]:
    """``(start, end)`` when ``end`` is after ``start``; a reversed or empty period is a mistake, not
    an empty answer (a report, simulation or plan of nothing would look like a quiet month).
    ``given``: the two options and their values as typed (start option, its text, end option, its
    text), which the message repeats rather than the moments they were read as. ``max_days``: the
    longest period the command takes (its cost grows with it: a simulation of 1900-2199 would run
    for hours on a real book)."""
    start_option, start_text, end_option, end_text = given
    if end <= start:
        raise fail(f"{end_option} {end_text} is not after {start_option} {start_text}: "
                   "the period must end after it starts")
    if max_days is not None and end - start > timedelta(days=max_days):
        raise fail(f"{start_option} {start_text} {end_option} {end_text} spans {(end - start).days:,} days: "
                   f"at most {max_days} at a time")
    return start, end


def day(text: str, option: str) -> date:
    """A YYYY-MM-DD date within the years every input takes: read as a CSV cell is
    (``store.importing.fields.iso_date``), so the command line and a file agree on what a date is."""
    from store.importing.fields import FieldError, iso_date

    try:
        return iso_date(option, text)
    except FieldError as exc:
        raise fail(str(exc)) from None
