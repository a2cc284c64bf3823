"""The ``journeys`` command, the top layer: each area registers its commands in its own module below.

May import every other package; nothing imports it (the console calls the same functions directly)."""

from __future__ import annotations

import logging
import os
import sys

import typer

from engine.cli.arguments import OneLineErrors
from store.masking import install_masking_filter

app = typer.Typer(
    name="journeys",
    cls=OneLineErrors,
    help="Service Journeys: tiered, rule-driven customer service journeys for an insurer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


_registered = False


def build_app() -> typer.Typer:
    """The CLI with every area's commands (also used by tests through typer's CliRunner)."""
    global _registered
    if not _registered:
        _register()
        _registered = True
    return app


def _register() -> None:
    # Imported here so that `journeys --help` stays fast and a broken optional area cannot
    # take the others down with it at import time of this module.
    from engine.cli import (
        channel_commands,
        console_commands,
        data_commands,
        db_commands,
        journey_commands,
        plan_commands,
        privacy_commands,
        report_commands,
        review_commands,
        run_commands,
    )

    for module in (
        journey_commands,
        db_commands,
        data_commands,
        plan_commands,
        channel_commands,
        run_commands,
        console_commands,
        report_commands,
        privacy_commands,
        review_commands,
    ):
        module.register(app)


def _database_not_ready(exc: Exception) -> str | None:
    """What to tell someone whose database cannot serve the command at all (not made yet, an older
    schema, a file that cannot be opened or is no database, a server that does not answer, a URL no
    installed driver takes), which any command reading it can meet; None otherwise."""
    if "sqlalchemy" not in sys.modules:  # then the error cannot be one of its own
        return None
    from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError, ProgrammingError

    # Raised while the engine is made from JOURNEYS_DATABASE_URL, before any command's own work; an
    # ArgumentError about anything but the URL is a bug of ours and keeps its traceback.
    if isinstance(exc, NoSuchModuleError) or (isinstance(exc, ArgumentError) and "URL" in str(exc)):
        return f"JOURNEYS_DATABASE_URL is not a database URL this installation can use ({exc})"
    if not isinstance(exc, DatabaseError):
        return None
    text = str(exc.orig).strip()
    cause = text.splitlines()[0] if text else type(exc.orig).__name__
    if isinstance(exc, OperationalError | ProgrammingError):
        if "no such table" in cause or ("relation" in cause and "does not exist" in cause):
            return f"the database has no schema yet, or an older one ({cause}): run `journeys db upgrade` first"
        if "unable to open database file" in cause:
            return f"cannot open the database ({cause}): check JOURNEYS_DATABASE_URL and its folder"
        if "connection failed" in cause or "could not connect" in cause or "Connection refused" in text:
            return f"cannot reach the database server ({cause}): check JOURNEYS_DATABASE_URL and that the server runs"
    if "file is not a database" in cause:
        return f"the database file is not an SQLite database ({cause}): check JOURNEYS_DATABASE_URL"
    return None


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("JOURNEYS_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_masking_filter()
    try:
        build_app()()
    except Exception as exc:
        message = _database_not_ready(exc)
        if message is None:
            raise
        from engine.cli.output import err

        err.print(message, markup=False)
        raise SystemExit(2) from None
