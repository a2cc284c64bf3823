"""``journeys users add|list|passwd|disable`` (argon2 hashes, passwords never on the command line, PII masked);
``journeys serve`` is registered; help and a cached ``journeys validate`` load no heavy library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from engine.cli import build_app
from engine.cli.console_commands import ROLES_HELP
from store.clock import utcnow
from store.db import session_scope
from store.models import ROLES, AppUser, AuditLog
from tests.console.conftest import PASSWORD, login, password_hash
from tests.db_support import inserted


def test_users_add_reads_the_password_from_stdin(db_url: str) -> None:
    result = CliRunner().invoke(build_app(), ["users", "add", "lily", "--role", "supervisor", "--password-stdin",
                                              "--team", "a", "--locale", "en"], input="a-long-password\n")
    assert result.exit_code == 0, result.output
    assert "a-long-password" not in result.output
    with session_scope(db_url) as s:
        lily = s.exec(select(AppUser).where(AppUser.username == "lily")).one()
        assert lily.role == "supervisor" and lily.team == "a" and lily.locale == "en"
        assert lily.password_hash.startswith("$argon2") and "a-long-password" not in lily.password_hash
        assert s.exec(select(AuditLog).where(AuditLog.action == "user_add")).one().actor == "cli"
    from console.auth import authenticate

    assert authenticate("lily", "a-long-password", db_url) is not None


def test_users_add_refuses_bad_input(db_url: str) -> None:
    runner = CliRunner()
    bad_role = runner.invoke(build_app(), ["users", "add", "xu", "--role", "king", "--password-stdin"],
                             input="pw123456\n")
    assert bad_role.exit_code != 0
    short = runner.invoke(build_app(), ["users", "add", "xu", "--role", "agent", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 8" in short.output
    added = runner.invoke(build_app(), ["users", "add", "yan", "--role", "agent", "--password-stdin"],
                          input="pw123456789\n")
    assert added.exit_code == 0, added.output
    dup = runner.invoke(build_app(), ["users", "add", "yan", "--role", "agent", "--password-stdin"],
                        input="pw123456789\n")
    assert dup.exit_code == 1 and "is taken" in dup.output


@pytest.mark.parametrize("name", ["x", "Bob", "li lei", "<b>", "_lead", "wang.fang@example.com", "a" * 33, ""])
def test_users_add_applies_the_console_s_username_rule(db_url: str, name: str) -> None:
    result = CliRunner().invoke(build_app(), ["users", "add", name, "--role", "agent", "--password-stdin"],
                                input="pw123456789\n")
    assert result.exit_code == 1 and "2 to 32 characters" in result.output
    with session_scope(db_url) as session:
        assert session.exec(select(AppUser).where(AppUser.username == name)).first() is None


def test_serve_is_a_command() -> None:
    result = CliRunner().invoke(build_app(), ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "--host" in result.output


# --- a fast CLI: nothing heavy is loaded to show help or a cached validation ---------------------

# (Not pydantic: typer itself uses it to convert option values.)
HEAVY = ("prefect", "matplotlib", "sqlalchemy", "sqlmodel", "alembic", "twilio", "fastapi", "starlette", "uvicorn",
         "durable", "jinja2", "babel", "argon2", "yaml")
ROOT = Path(__file__).resolve().parents[2]


def _heavy_modules_after(code: str, env: dict[str, str] | None = None) -> tuple[list[str], str]:
    """Run ``code`` in a fresh interpreter; the heavy libraries it loaded, and what it printed."""
    probe = ("import atexit, json, sys\n"
             f"atexit.register(lambda: print('HEAVY=' + json.dumps(sorted({{m.split('.')[0] for m in sys.modules}}"
             f" & set({list(HEAVY)!r}))), file=sys.stderr))\n" + code)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, check=False)
    marker = [line for line in done.stderr.splitlines() if line.startswith("HEAVY=")]
    assert marker, done.stderr
    return json.loads(marker[-1].removeprefix("HEAVY=")), done.stdout


def test_help_loads_no_heavy_library() -> None:
    code = (
        "from typer.testing import CliRunner\n"
        "import engine.cli\n"
        "app = engine.cli.build_app()\n"
        "for args in ([], ['validate'], ['plan'], ['users'], ['users', 'passwd'], ['db'], ['keys'], ['preview'],\n"
        "             ['seed'], ['report'], ['dispatch'], ['serve']):\n"
        "    result = CliRunner().invoke(app, [*args, '--help'])\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        "print('ok')\n"
    )
    heavy, out = _heavy_modules_after(code)
    assert out.strip() == "ok"
    assert heavy == []


def test_validate_answers_a_repeat_from_the_cache_without_loading_the_validator(tmp_path: Path) -> None:
    code = ("import sys\nsys.argv = ['journeys', 'validate', 'journeys/gold-monthly-callback.yaml']\n"
            "from engine.cli import main\nmain()\n")
    env = {"JOURNEYS_CACHE_DIR": str(tmp_path / "cache")}
    first_heavy, first = _heavy_modules_after(code, env)
    again_heavy, again = _heavy_modules_after(code, env)
    assert "gold-monthly-callback" in first and "1 journeys valid" in first
    assert again == first
    assert {"sqlalchemy", "jinja2", "yaml"} <= set(first_heavy)  # the first run validated
    assert again_heavy == []  # the second printed the stored verdict


def test_the_roles_in_the_help_are_the_stores() -> None:
    assert ROLES_HELP == ROLES


# --- users list, passwd, disable ----------------------------------------------------------------


def _add(name: str, role: str = "agent", *extra: str) -> None:
    result = CliRunner().invoke(build_app(), ["users", "add", name, "--role", role, "--password-stdin", *extra],
                                input="first-password-1\n")
    assert result.exit_code == 0, result.output


def test_users_list_masks_what_is_personal(db_url: str) -> None:
    _add("lily", "supervisor", "--team", "a", "--display-name", "Lily Chen")
    # Names the console's rule now refuses, stored by a release before it: still listed, masked.
    for name, role, display in (("wang.fang@example.com", "agent", "王芳"), ("13812345678", "ops", "13812345678")):
        inserted(db_url, AppUser(username=name, display_name=display, role=role, password_hash=password_hash(),
                                 created_at=utcnow()))
    CliRunner().invoke(build_app(), ["users", "disable", "lily"])

    result = CliRunner().invoke(build_app(), ["users", "list"])
    assert result.exit_code == 0, result.output
    for personal in ("wang.fang@example.com", "13812345678", "Lily Chen", "王芳"):
        assert personal not in result.output
    assert "w***@example.com" in result.output and "138****5678" in result.output and "王*" in result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert lines["lily"].split()[1:4] == ["supervisor", "a", "zh-CN"] and "disabled" in lines["lily"]

    as_json = CliRunner().invoke(build_app(), ["users", "list", "--json"])
    rows = {row["username"]: row for row in json.loads(as_json.output)}
    assert set(rows) == {"lily", "w***@example.com", "138****5678"}
    assert rows["lily"]["active"] is False and rows["138****5678"]["role"] == "ops"
    assert "first-password" not in as_json.output and "argon2" not in as_json.output


def test_users_list_columns_line_up_with_chinese_names(db_url: str) -> None:
    """Each column starts at the same terminal column on every line, a Chinese character taking two: padding by
    len() shifted every column after a Chinese team or name."""
    from rich.cells import cell_len

    _add("lily", "supervisor", "--team", "a", "--display-name", "Lily Chen")
    _add("zhang", "agent", "--team", "华东理赔服务一组", "--display-name", "张伟")
    _add("li", "ops", "--display-name", "李")
    lines = [line for line in CliRunner().invoke(build_app(), ["users", "list"]).output.splitlines()
             if line.strip() and not set(line.strip()) <= {"─", " "}]
    header, rows = lines[0], {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"lily", "zhang", "li"}
    for column, values in (("role", ("supervisor", "agent", "ops")), ("language", ("zh-CN",) * 3),
                           ("state", ("active",) * 3), ("name", ("L", "张", "李"))):
        start = cell_len(header[:header.index(column)])
        for user, value in zip(("lily", "zhang", "li"), values, strict=True):
            line = rows[user]
            at = line.index(value, len(user))
            assert cell_len(line[:at]) == start, (column, user, line)


def test_users_passwd_reads_a_hidden_prompt_and_ends_the_sessions(client: TestClient, db_url: str) -> None:
    login(client, "ann")
    assert client.get("/inbox", follow_redirects=False).status_code == 200

    result = CliRunner().invoke(build_app(), ["users", "passwd", "ann"], input="brand-new-pass\nbrand-new-pass\n")
    assert result.exit_code == 0, result.output
    assert "brand-new-pass" not in result.output  # the prompt hides what is typed
    response = client.get("/inbox", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")

    from console.auth import authenticate

    assert authenticate("ann", PASSWORD, db_url) is None
    assert authenticate("ann", "brand-new-pass", db_url) is not None
    with session_scope(db_url) as s:
        assert s.exec(select(AuditLog).where(AuditLog.action == "user_password")).one().actor == "cli"


def test_users_passwd_unlocks_and_refuses_bad_input(db_url: str) -> None:
    _add("kim")
    with session_scope(db_url) as s:
        kim = s.exec(select(AppUser).where(AppUser.username == "kim")).one()
        kim.locked_until = utcnow() + timedelta(minutes=10)
        kim.failed_logins = 3
    runner = CliRunner()
    # Never from the command line: a password there stays in shell history and `ps`.
    assert runner.invoke(build_app(), ["users", "passwd", "kim", "second-password"]).exit_code == 2
    short = runner.invoke(build_app(), ["users", "passwd", "kim", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 8" in short.output
    nobody = runner.invoke(build_app(), ["users", "passwd", "nobody", "--password-stdin"], input="long-enough-1\n")
    assert nobody.exit_code == 1 and "no user 'nobody'" in nobody.output

    ok = runner.invoke(build_app(), ["users", "passwd", "kim", "--password-stdin"], input="second-password\n")
    assert ok.exit_code == 0, ok.output
    from console.auth import attempt_login

    assert attempt_login("kim", "second-password", db_url).outcome == "ok"


def test_users_disable_stops_logins_and_sessions(client: TestClient, db_url: str) -> None:
    login(client, "bob")
    result = CliRunner().invoke(build_app(), ["users", "disable", "bob"])
    assert result.exit_code == 0, result.output
    response = client.get("/inbox", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    from console.auth import attempt_login

    assert attempt_login("bob", PASSWORD, db_url).outcome == "inactive"
    again = CliRunner().invoke(build_app(), ["users", "disable", "bob"])
    assert again.exit_code == 0 and "already disabled" in again.output
    unknown = CliRunner().invoke(build_app(), ["users", "disable", "nobody"])
    assert unknown.exit_code == 1
    with session_scope(db_url) as s:
        [entry] = s.exec(select(AuditLog).where(AuditLog.action == "user_active")).all()
        assert entry.actor == "cli" and entry.detail == {"active": False}
