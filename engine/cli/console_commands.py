"""Console commands: ``journeys serve`` (the web console and API) and ``journeys users add``."""

from __future__ import annotations

import sys

import typer

from store.models import ROLES

users_app = typer.Typer(help="Console users (agents, supervisors, ops, admins).", no_args_is_help=True)


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Run the agent and ops console with its REST API.

    Request limits come from the environment (see ``console.limits``): JOURNEYS_HEADER_TIMEOUT
    (seconds to send a request head, default 10), JOURNEYS_KEEPALIVE_TIMEOUT (idle kept-alive
    connections, default 5) and the body caps JOURNEYS_MAX_BODY_API/_HOOKS/_FORMS/_NOTES.
    """
    import uvicorn

    from console.app import create_app
    from console.limits import server_options

    uvicorn.run(create_app(), host=host, port=port, log_level="info", proxy_headers=False, **server_options())


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option(..., "--role", help=f"One of: {', '.join(ROLES)}."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
    team: str | None = typer.Option(None, help="Team (agents whose team names a queue serve it first)."),
    locale: str = typer.Option("zh-CN", help="Console language: zh-CN or en."),
    display_name: str = typer.Option("", help="Name shown in the console."),
    off_shift: bool = typer.Option(False, "--off-shift", help="Create the user as not on shift."),
) -> None:
    """Add a console user with an argon2-hashed password."""
    from console.auth import audit, create_user
    from console.i18n import SUPPORTED
    from store.db import session_scope

    if role not in ROLES:
        raise typer.BadParameter(f"one of {', '.join(ROLES)}", param_hint="--role")
    if locale not in SUPPORTED:
        raise typer.BadParameter(f"one of {', '.join(SUPPORTED)}", param_hint="--locale")
    if password_stdin:
        # Only the first line: `echo secret | journeys users add …` must not keep the newline.
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope() as session:
            user = create_user(session, name, password, role, display_name=display_name, team=team, locale=locale,
                               on_shift=not off_shift)
            audit(session, "cli", "user_add", "user", user.id or 0, {"role": role})
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"added {role} {name!r}" + (f" (team {team})" if team else ""))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(users_app, name="users")
