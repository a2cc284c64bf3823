"""Every command that signs or reads customers' unsubscribe links says alike, in one line on stderr, that
JOURNEYS_SECRET_KEY is not set, what that costs it and what to set; the channels' timestamped ERROR log
record (written by preview and review show, worded for the services) is not written as well."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.cli_process import run_journeys
from tests.plan_support import Book

SMS_ENV = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "token", "TWILIO_FROM": "+15005550006",
           "TWILIO_API_BASE": "http://127.0.0.1:9"}


def _version_id(env: dict[str, str], tmp_path: Path) -> str:
    """A template's version in force: a preview lands the shipped templates in a new database."""
    import json

    keyed = {**env, "JOURNEYS_SECRET_KEY": "a lasting test key"}
    assert run_journeys("preview", "silver_weekly_push", "--customer", "C1", env=keyed, cwd=tmp_path).code == 0
    listed = run_journeys("review", "list", "--json", env=env, cwd=tmp_path)
    assert listed.code == 0, listed.stderr
    return str(next(r["id"] for r in json.loads(listed.stdout) if r["journey"] == "template:silver_weekly_push"))


@pytest.mark.parametrize("command", ["preview", "review show", "dispatch"])
def test_a_missing_secret_key_is_one_line_saying_what_to_set(command: str, sqlite_book: Book, tmp_path: Path) -> None:
    sqlite_book.customer(external_id="C1")
    env = {"JOURNEYS_DATABASE_URL": sqlite_book.url, "JOURNEYS_CACHE_DIR": str(tmp_path / "cache")}
    args = {"preview": ["preview", "silver_weekly_push", "--customer", "C1", "--channel", "sms"],
            "dispatch": ["dispatch", "--once"]}.get(command)
    if args is None:
        args = ["review", "show", _version_id(env, tmp_path)]
    if command == "dispatch":
        env.update(SMS_ENV)
    without = run_journeys(*args, env=env, cwd=tmp_path)
    assert without.code == 0, without.stderr
    [line] = without.error_lines
    assert line.startswith("warning: JOURNEYS_SECRET_KEY is not set: "), line
    assert line.endswith("; set JOURNEYS_SECRET_KEY to the same lasting value on every process"), line
    with_key = run_journeys(*args, env={**env, "JOURNEYS_SECRET_KEY": "a lasting test key"}, cwd=tmp_path)
    assert with_key.code == 0 and with_key.error_lines == [], with_key.stderr
