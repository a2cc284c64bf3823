"""``journeys db upgrade|downgrade|current``."""

from __future__ import annotations

import typer

from engine.cli.output import fail, out
from store.masking import mask_text

db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")


def _shown_url() -> str:
    from store.db import database_url

    url = database_url()
    # Never print a password.
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        url = f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return mask_text(url)


def _migrating(step: str, revision: str) -> None:
    """Run Alembic's ``step`` to ``revision``; a revision it cannot find (or go to) is one line, exit 2."""
    from alembic.util import CommandError

    from store import migrate  # Alembic and SQLAlchemy: loaded by the db commands only

    try:
        migrate.upgrade(revision=revision) if step == "upgrade" else migrate.downgrade(revision=revision)
    except CommandError as exc:
        raise fail(f"REVISION {revision!r}: {' '.join(str(exc).split())}") from None


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("heads")) -> None:
    """Bring the schema up to REVISION (default: the newest)."""
    from store import migrate

    _migrating("upgrade", revision)
    out.print(f"database {_shown_url()} at revision {migrate.current_revision()}", markup=False)


@db_app.command("downgrade")
def downgrade(revision: str = typer.Argument(...)) -> None:
    """Take the schema back to REVISION ('base' drops everything)."""
    from store import migrate

    _migrating("downgrade", revision)
    out.print(f"database {_shown_url()} at revision {migrate.current_revision()}", markup=False)


@db_app.command("current")
def current() -> None:
    """Show the schema revision of the database."""
    from store import migrate

    out.print(f"database {_shown_url()} at revision {migrate.current_revision()}", markup=False)
