"""Checks every command makes of what it is given before it starts work: output paths and periods.

One place, so that every command that writes a file or takes a period refuses a mistake the same
way: one line on stderr naming the option, exit code 2, never a traceback after minutes of work.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from engine.cli.output import err, fail


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


def days_in_years(start: date, days: int, given: tuple[str, str, str, str]) -> None:
    """Refuse ``days`` days from ``start`` when they run past the years every input takes (each option is
    within its bounds, the two together need not be): the run would stop with a traceback on the first
    moment out of them, after everything before it was written. ``given``: as ``period``'s."""
    from store.clock import LAST_YEAR

    last = start + timedelta(days=days - 1)
    if last.year > LAST_YEAR:
        start_option, start_text, days_option, days_text = given
        raise fail(f"{start_option} {start_text} {days_option} {days_text} ends on {last.isoformat()}: "
                   f"the last day must be in {LAST_YEAR} at the latest")


# --- bounded option types ---------------------------------------------------------------------------
# Every number, date, moment or period a command takes goes through one of these, so that a value no
# run could mean (a batch of 10**20, a port of 99999, a plan from 1900) is one line and exit 2 before
# any work, naming the option and what it takes (``OneLineErrors`` below prints it).


# A seed is written down to repeat a run: 32 bits tell more runs apart than anyone keeps.
MAX_SEED = 2**32 - 1


class OutOfBounds(typer.BadParameter):
    """A value the option does not take; the message follows the option's name ("--batch 0 is ...")."""


def _shown(value: object, limit: int = 40) -> str:
    text = str(value).strip()
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


class Whole:
    """A whole number from ``low`` to ``high``: the parser of a bounded option (``whole_option``)."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    @property
    def bounds(self) -> str:
        return f"{self.low:,} to {self.high:,}"

    def __call__(self, value: str | int) -> int:
        if isinstance(value, int):  # the default, already a number
            number = value
        else:
            try:
                number = int(value.strip())
            except ValueError:  # also a string of more digits than int() reads
                raise OutOfBounds(f"{_shown(value)} is not a whole number from {self.bounds}") from None
        if not self.low <= number <= self.high:
            raise OutOfBounds(f"{_shown(value)} is not from {self.bounds}")
        return number


# How far after now an "as of" moment may be (``as_of_option``): a day, for a date typed in a zone ahead
# of UTC. Those commands record what they find as of the moment (tier changes, churn warnings, the tier
# review's adjustments, a report's overdue tasks); after it there is nothing yet to find, so a moment in
# 2199 read every active customer as gone quiet and stamped the records with that year.
AS_OF_AHEAD = timedelta(days=1)


def _days(span: timedelta) -> str:
    return "a day" if span.days == 1 else f"{span.days:,} days"


class Moment:
    """An ISO 8601 date or moment within the years every input takes (1900-2199) and, with ``ahead``, at
    most that long after now; kept as typed, since the command reads it in its own zone and repeats it
    in its messages."""

    def __init__(self, ahead: timedelta | None = None) -> None:
        self.ahead = ahead

    def __call__(self, value: str) -> str:
        from engine.language.moments import parse_utc_moment
        from store.clock import utcnow

        try:
            moment = parse_utc_moment(value)  # the zone does not change the year enough to matter here
        except ValueError as exc:
            raise OutOfBounds(str(exc)) from None
        if self.ahead is not None and moment > (latest := utcnow() + self.ahead):
            raise OutOfBounds(f"{_shown(value)} is after {latest:%Y-%m-%d %H:%M} UTC: the command judges what "
                              f"has happened by then, so at most {_days(self.ahead)} after now")
        return value


class Day:
    """A YYYY-MM-DD date within the years every input takes: read as a CSV cell is
    (``store.importing.fields.iso_date``), so the command line and a file agree on what a date is."""

    def __call__(self, value: str | date) -> date:
        from store.importing.fields import FieldError, iso_date

        if isinstance(value, date):
            return value
        try:
            return iso_date("", value)
        except FieldError as exc:
            raise OutOfBounds(str(exc).strip()) from None


class Retention:
    """A retention period: a whole number and a unit y, m (months), w or d, at most a century
    (store.retention's bound, which every caller of the purge has)."""

    def __call__(self, value: str) -> str:
        from store.retention import RetentionError, RetentionTooLong, parse_period

        try:
            parse_period(value)
        except RetentionTooLong:
            raise OutOfBounds(f"{_shown(value)} is longer than a century (at most 100y, 1200m, 5218w or 36525d)"
                              ) from None
        except RetentionError:
            raise OutOfBounds(f"{_shown(value)} is a bad retention period: a whole number and a unit y (years), "
                              "m (months), w or d, e.g. 3y") from None
        return value


def whole_option(default: Any, *names: str, low: int, high: int, help: str) -> Any:
    """A whole-number option taking ``low`` to ``high`` (its help says so)."""
    return typer.Option(default, *names, parser=Whole(low, high), metavar="N",
                        help=f"{help} ({low:,} to {high:,}).")


def whole_argument(*, low: int, high: int, help: str) -> Any:
    return typer.Argument(..., parser=Whole(low, high), help=f"{help} ({low:,} to {high:,}).")


def moment_option(default: Any, *names: str, help: str) -> Any:
    return typer.Option(default, *names, parser=Moment(), metavar="WHEN", help=help)


def as_of_option(default: Any, *names: str, help: str) -> Any:
    """The moment a command judges and records what it finds as of: at most ``AS_OF_AHEAD`` from now."""
    return typer.Option(default, *names, parser=Moment(AS_OF_AHEAD), metavar="WHEN",
                        help=f"{help}; at most {_days(AS_OF_AHEAD)} after now")


def day_option(default: Any, *names: str, help: str) -> Any:
    return typer.Option(default, *names, parser=Day(), metavar="YYYY-MM-DD", help=help)


def retention_option(*names: str, help: str) -> Any:
    return typer.Option(..., *names, parser=Retention(), metavar="PERIOD", help=help)


# --- usage errors on one line -----------------------------------------------------------------------


def one_line(error: typer.TyperException) -> str:
    """A usage error as one line: an out-of-bounds value after its option's name, anything else after the
    command it was given to (Click's own form takes a usage line, a hint and a box)."""
    param = getattr(error, "param", None)
    if isinstance(error, OutOfBounds) and param is not None:
        # An option by its flag, an argument by its name, as Click's own messages name them.
        name = param.opts[0] if param.param_type_name == "option" else str(param.name)
        return f"{name} {error.message}"
    ctx = getattr(error, "ctx", None)
    where = ctx.command_path if ctx is not None else "journeys"
    message = " ".join(error.format_message().split()).rstrip(".")
    return f"{where}: {message} (see {where} --help)"


def plain_flags(command: TyperCommand | TyperGroup) -> None:
    """Show every flag of ``command`` and of the commands under it as a flag: typer's help gives a flag
    (``--dry-run``, ``--help``) the type column ``<bool>``, which reads as if it took a value. An empty
    metavar leaves the column blank; a flag's usage and parsing never read its metavar."""
    help_option = command.get_help_option(typer.Context(command, info_name=command.name))
    for param in (*command.params, *([help_option] if help_option is not None else [])):
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        plain_flags(sub)


class OneLineErrors(TyperGroup):
    """The ``journeys`` group, printing a usage error as one line on stderr (exit 2): a script's log and a
    person's terminal both get the option and what it takes, never a box or a traceback. Its flags and
    its commands' read as flags in their help (``plain_flags``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_flags(self)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as exc:  # Click's errors: a usage error, a file it could not open
            if type(exc).__name__ != "NoArgsIsHelpError":  # that one printed the help already
                err.print(one_line(exc), markup=False)
            sys.exit(exc.exit_code)
        except typer.Abort:
            err.print("aborted", markup=False)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)
