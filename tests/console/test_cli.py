"""``journeys users add`` stores an argon2 hash; ``journeys serve`` is registered."""

from __future__ import annotations

from sqlmodel import select
from typer.testing import CliRunner

from engine.cli import build_app
from store.db import session_scope
from store.models import AppUser, AuditLog


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
    bad_role = runner.invoke(build_app(), ["users", "add", "x", "--role", "king", "--password-stdin"],
                             input="pw123456\n")
    assert bad_role.exit_code != 0
    short = runner.invoke(build_app(), ["users", "add", "x", "--role", "agent", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 8" in short.output
    runner.invoke(build_app(), ["users", "add", "y", "--role", "agent", "--password-stdin"], input="pw123456789\n")
    dup = runner.invoke(build_app(), ["users", "add", "y", "--role", "agent", "--password-stdin"],
                        input="pw123456789\n")
    assert dup.exit_code == 1 and "already exists" in dup.output


def test_serve_is_a_command() -> None:
    result = CliRunner().invoke(build_app(), ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "--host" in result.output
