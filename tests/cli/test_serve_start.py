"""``journeys serve`` as a new operator meets it: on a database without a schema it refuses in one line
(exit 2), as every command does (docs/cli.md), where it started, answered every page with an error and
wrote the desk round's traceback a minute; and on a book nobody can sign in to yet it says how to add a
user. Run as the installed command; its stderr is read line by line up to uvicorn's "running" line."""

from __future__ import annotations

import os
import socket
import subprocess  # nosec B404 # the test runs our own command
from pathlib import Path

from tests.cli.cli_process import JOURNEYS

RUNNING = "Uvicorn running on"
NO_USER = "warning: no console user can sign in yet: add one with `journeys users add NAME --role admin`"


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def _serve_until_running(url: str, cwd: Path) -> tuple[int | None, list[str]]:
    """The stderr lines of ``journeys serve`` up to uvicorn's running line (then it is stopped), or all of
    them and the exit code when it stopped by itself."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JOURNEYS_", "PREFECT_API"))}
    env = {**base, "JOURNEYS_DATABASE_URL": url, "JOURNEYS_SECRET_KEY": "a lasting test key",
           "JOURNEYS_DESK_EVERY": "0", "JOURNEYS_CACHE_DIR": str(cwd / "cache")}
    process = subprocess.Popen([str(JOURNEYS), "serve", "--port", str(_free_port())], env=env, cwd=cwd,  # nosec B603
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            if RUNNING in line:
                return None, lines
        return process.wait(), lines
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait()


def test_serve_on_a_database_without_schema_refuses_in_one_line(sqlite_url: str, tmp_path: Path) -> None:
    code, lines = _serve_until_running(sqlite_url, tmp_path)
    assert (code, lines) == (2, ["the database has no schema yet: run `journeys db upgrade` first"])


def test_serve_says_how_to_add_a_user_while_nobody_can_sign_in(db_url: str, tmp_path: Path) -> None:
    code, lines = _serve_until_running(db_url, tmp_path)
    assert code is None and NO_USER in lines, lines


def test_serve_says_nothing_of_users_once_one_can_sign_in(db_url: str, tmp_path: Path) -> None:
    from console.auth import create_user
    from store.db import session_scope

    with session_scope(db_url) as session:
        create_user(session, "ann", "a long enough password", "admin")
    code, lines = _serve_until_running(db_url, tmp_path)
    assert code is None and not any("console user" in line for line in lines), lines
