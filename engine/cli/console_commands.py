"""Console commands: ``journeys serve`` (the web console and API) and ``journeys users add|list|passwd|disable``.

Passwords are read with a hidden prompt or, with ``--password-stdin``, from the first line of
standard input; never from the command line, where ``ps`` and shell history would keep them.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from engine.cli.arguments import whole_option
from engine.cli.output import err, fail, out, print_json, refuse_missing_folders, warn_if_no_secret

# The roles for the help text. store.models.ROLES is the authority (checked when a command runs, and
# tests/console/test_cli.py checks the two agree); importing it here would load SQLModel for --help.
ROLES_HELP: tuple[str, ...] = ("agent", "supervisor", "ops", "admin", "compliance")

users_app = typer.Typer(help="Console users (agents, supervisors, ops, admins).", no_args_is_help=True)


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = whole_option(8000, "--port", low=1, high=65535, help="Port to listen on"),
) -> None:
    """Run the agent and ops console with its REST API.

    Request limits come from the environment (see ``console.limits``): JOURNEYS_HEADER_TIMEOUT
    (seconds to send a request head, default 10), JOURNEYS_KEEPALIVE_TIMEOUT (idle kept-alive
    connections, default 5) and the body caps JOURNEYS_MAX_BODY_API/_HOOKS/_FORMS/_NOTES.
    The desk's round (SLA times, assignment, warnings, escalation) runs with it, every
    JOURNEYS_DESK_EVERY seconds (default 60; 0: not in this process).
    """
    import socket

    import uvicorn

    from console.app import create_app
    from console.limits import server_options
    from store import migrate

    # Tried before the app is made: uvicorn says it in a log record between its start-up lines, exit 3.
    try:
        # The family of the address given (``::`` is IPv6), as uvicorn binds it.
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:
        raise fail(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None

    # Without a schema the console answered every page with an error and its desk round wrote a traceback
    # a minute; without a user nobody could sign in, and nothing said how to make one.
    if migrate.current_revision() is None:
        raise fail("the database has no schema yet: run `journeys db upgrade` first")
    refuse_missing_folders()
    if not _anyone_can_sign_in():
        err.print("warning: no console user can sign in yet: add one with `journeys users add NAME --role admin`",
                  markup=False)
    warn_if_no_secret("unsubscribe links customers open are answered as invalid, and previews and test sends "
                      "show none")
    uvicorn.run(create_app(), host=host, port=port, log_level="info", proxy_headers=False, **server_options())


def _anyone_can_sign_in() -> bool:
    from sqlmodel import select

    from store.db import session_scope
    from store.models import AppUser

    with session_scope() as session:
        return session.exec(select(AppUser.id).where(AppUser.active).limit(1)).first() is not None


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        # Only the first line: `echo secret | journeys users add …` must not keep the newline.
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


PASSWORD_STDIN_HELP = "Read the password from the first line of standard input (default: a hidden prompt)."  # nosec B105 # help text


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option(..., "--role", help=f"One of: {', '.join(ROLES_HELP)}."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=PASSWORD_STDIN_HELP),
    team: str | None = typer.Option(None, help="Team (agents whose team names a queue serve it first)."),
    locale: str = typer.Option("zh-CN", help="Console language: zh-CN or en."),
    display_name: str = typer.Option("", help="Name shown in the console."),
    off_shift: bool = typer.Option(False, "--off-shift", help="Create the user as not on shift."),
) -> None:
    """Add a console user with an argon2-hashed password."""
    from console.auth import audit, create_user
    from console.i18n import SUPPORTED
    from store.db import session_scope
    from store.models import ROLES

    if role not in ROLES:
        raise typer.BadParameter(f"one of {', '.join(ROLES)}", param_hint="--role")
    if locale not in SUPPORTED:
        raise typer.BadParameter(f"one of {', '.join(SUPPORTED)}", param_hint="--locale")
    password = _read_password(password_stdin)
    try:
        with session_scope() as session:
            user = create_user(session, name, password, role, display_name=display_name, team=team, locale=locale,
                               on_shift=not off_shift)
            audit(session, "cli", "user_add", "user", user.id or 0, {"role": role})
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"added {role} {name!r}" + (f" (team {team})" if team else ""))


@users_app.command("list")
def users_list(
    as_json: bool = typer.Option(False, "--json", help="One JSON array of users."),
) -> None:
    """List console users: role, team, language, state. Names that hold personal data are masked."""
    from sqlmodel import col, select

    from store.clock import as_utc, utcnow
    from store.db import session_scope
    from store.masking import mask_name, mask_text
    from store.models import AppUser

    now = utcnow()
    rows: list[dict[str, Any]] = []
    with session_scope() as session:
        for user in session.exec(select(AppUser).order_by(col(AppUser.username))):
            locked = user.locked_until is not None and as_utc(user.locked_until) > now
            rows.append({
                # A login name may be a phone number or an e-mail address; a display name is a person's name.
                "username": mask_text(user.username),
                "display_name": mask_name(user.display_name) if user.display_name != user.username
                else mask_text(user.username),
                "role": user.role, "team": mask_text(user.team) if user.team else None, "locale": user.locale,
                "active": user.active, "on_shift": user.on_shift,
                "locked_until": as_utc(user.locked_until).isoformat() if locked and user.locked_until else None,
            })
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no console users (add one with `journeys users add`)", markup=False)
        return
    from rich.box import SIMPLE_HEAD
    from rich.table import Table
    from rich.text import Text

    # A table measures each cell in terminal columns: a Chinese team or name is two columns a character,
    # which padding by len() misaligned every column after it.
    table = Table(box=SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in ("user", "role", "team", "language", "shift", "state", "name"):
        table.add_column(column, overflow="fold")
    for r in rows:
        state = "active" if r["active"] else "disabled"
        if r["locked_until"]:
            state += f", locked until {r['locked_until']}"
        cells = (r["username"], r["role"], r["team"] or "-", r["locale"], "on shift" if r["on_shift"] else "off shift",
                 state, r["display_name"])
        table.add_row(*(Text(str(c)) for c in cells))  # as written: a name is never read as markup
    out.print(table)


@users_app.command("passwd")
def users_passwd(
    name: str = typer.Argument(..., help="Login name."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=PASSWORD_STDIN_HELP),
) -> None:
    """Set a user's password; unlocks the account and ends every session it had."""
    from console.auth import audit, set_password
    from store.db import session_scope

    password = _read_password(password_stdin)
    try:
        with session_scope() as session:
            user = set_password(session, name, password)
            audit(session, "cli", "user_password", "user", user.id or 0)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"password of {name!r} changed; its sessions are ended")


@users_app.command("disable")
def users_disable(
    name: str = typer.Argument(..., help="Login name."),
) -> None:
    """Disable a user: no more logins, and its open sessions end at once (an admin re-enables it in the console)."""
    from console.auth import audit, deactivate_user
    from store.db import session_scope

    try:
        with session_scope() as session:
            user = deactivate_user(session, name)
            if user is not None:
                audit(session, "cli", "user_active", "user", user.id or 0, {"active": False})
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"disabled {name!r}; its sessions are ended" if user is not None else f"{name!r} was already disabled")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(users_app, name="users")
