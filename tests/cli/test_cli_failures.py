"""Every ``journeys`` subcommand fails alike (docs/cli.md): one line on stderr, no traceback and no
"error:" prefix, naming what is at fault first; exit 2 when nothing could be done with what was given (an
option, a file, the database URL or schema, a setting), 1 when the command ran and something failed or was
refused. Run as the installed command, in a subprocess: what a shell or a scheduler sees."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.cli.cli_process import run_journeys

BAD_URL = "nosuchdialect://x"
# (arguments, database: "migrated" | "bad url" | "no schema", exit code, how the one line starts). In the
# arguments {tmp} is the test's folder and {port} ({port6}) a port another socket listens on at 127.0.0.1 (::1).
CASES: dict[str, tuple[list[str], str, int, str]] = {
    "validate missing file": (["validate", "{tmp}/missing.yaml"], "migrated", 2,
                              "{tmp}/missing.yaml: no such file or folder"),
    "schema extra argument": (["schema", "extra"], "migrated", 2, "journeys schema: Got unexpected extra argument"),
    "db upgrade unknown revision": (["db", "upgrade", "nosuchrev"], "migrated", 2, "REVISION 'nosuchrev': "),
    "db downgrade unknown revision": (["db", "downgrade", "nosuchrev"], "migrated", 2, "REVISION 'nosuchrev': "),
    "db current bad url": (["db", "current"], "bad url", 2, "JOURNEYS_DATABASE_URL is not a database URL"),
    "seed bad count": (["seed", "--customers", "x"], "migrated", 2, "--customers 'x' is not a whole number"),
    "seed no schema": (["seed", "--customers", "1"], "no schema", 2, "seed: the database has no schema yet"),
    "import missing file": (["import", "customers", "{tmp}/missing.csv"], "migrated", 2,
                            "{tmp}/missing.csv: no such file; nothing imported"),
    "import bad file": (["import", "policies", "{tmp}/customers.csv"], "migrated", 2,
                        "{tmp}/customers.csv: missing columns"),
    "import unknown encoding": (["import", "customers", "{tmp}/customers.csv", "--encoding", "nope"], "migrated", 2,
                                "--encoding: unknown encoding 'nope'"),
    "import bad url": (["import", "customers", "{tmp}/customers.csv"], "bad url", 2, "JOURNEYS_DATABASE_URL"),
    "export missing folder": (["export", "customers", "--out", "{tmp}/no/x.csv"], "migrated", 2,
                              "--out: the folder {tmp}/no does not exist"),
    "export unmasked without actor": (["export", "customers", "--unmasked", "--out", "{tmp}/x.csv"], "migrated", 2,
                                      "export customers: an unmasked export needs --actor"),
    "plan bad moment": (["plan", "--at", "nope"], "migrated", 2, "--at 'nope' is not an ISO 8601 date"),
    "plan bad url": (["plan", "--at", "2026-12-02", "--dry-run"], "bad url", 2, "JOURNEYS_DATABASE_URL"),
    "explain unknown customer": (["explain", "NOSUCH", "--at", "2026-12-01"], "migrated", 1,
                                 "no customer with external id 'NOSUCH'"),
    "simulate reversed period": (["simulate", "--from", "2026-12-02", "--to", "2026-12-01"], "migrated", 2,
                                 "--to 2026-12-01 is not after --from 2026-12-02"),
    "simulate no schema": (["simulate", "--from", "2026-12-01", "--to", "2026-12-02"], "no schema", 2,
                           "the database has no schema yet"),
    "event unknown type": (["event", "emit", "no.such", "--customer", "C1"], "migrated", 2,
                           "journeys event emit: Invalid value: unknown event type 'no.such'"),
    "event unknown customer": (["event", "emit", "app.login", "--customer", "NOSUCH"], "migrated", 1,
                               "no customer with external id 'NOSUCH'"),
    "preview unknown template": (["preview", "nope", "--customer", "C1"], "migrated", 2, "unknown template 'nope'"),
    "preview unknown customer": (["preview", "silver_weekly_push", "--customer", "NOSUCH"], "migrated", 1,
                                 "no customer with external id 'NOSUCH'"),
    "preview bad event": (["preview", "silver_weekly_push", "--customer", "C1", "--event", "[{{"], "migrated", 2,
                          "--event is not JSON"),
    "report bad grouping": (["report", "--from", "2026-11-01", "--to", "2026-12-01", "--by", "nope"], "migrated", 2,
                            "journeys report: Invalid value for --by"),
    "report bad url": (["report", "--from", "2026-11-01", "--to", "2026-12-01"], "bad url", 2,
                       "JOURNEYS_DATABASE_URL"),
    "retier far moment": (["retier", "--at", "2300-01-01"], "migrated", 2, "--at '2300-01-01' is outside the years"),
    "tier-review no schema": (["tier-review"], "no schema", 2, "the database has no schema yet"),
    "churn-check bad url": (["churn-check"], "bad url", 2, "JOURNEYS_DATABASE_URL"),
    "trace unknown touch": (["trace", "--touch", "999"], "migrated", 1, "no touch 999"),
    "trace nothing named": (["trace"], "migrated", 2, "journeys trace: Invalid value: give one of"),
    "review show unknown version": (["review", "show", "99999"], "migrated", 1, "no journey version 99999"),
    "review approve unknown user": (["review", "approve", "99999", "--as", "nobody", "-m", "x"], "migrated", 1,
                                    "no active user 'nobody'"),
    "review submit unknown user": (["review", "submit", "--as", "nobody"], "migrated", 1, "no active user 'nobody'"),
    "review list no schema": (["review", "list"], "no schema", 2, "the database has no schema yet"),
    "users add bad role": (["users", "add", "bob", "--role", "nope", "--password-stdin"], "migrated", 2,
                           "journeys users add: Invalid value for --role"),
    "users add short password": (["users", "add", "bob", "--role", "agent", "--password-stdin"], "migrated", 1,
                                 "password must have at least 8 characters"),
    "users disable unknown user": (["users", "disable", "nobody"], "migrated", 1, "no user 'nobody'"),
    "users list bad url": (["users", "list"], "bad url", 2, "JOURNEYS_DATABASE_URL"),
    "keys rotate no key": (["keys", "rotate", "--new-key-env", "JOURNEYS_NO_SUCH_KEY"], "migrated", 2,
                           "keys rotate: JOURNEYS_NO_SUCH_KEY is not set"),
    "keys status bad url": (["keys", "status"], "bad url", 2, "JOURNEYS_DATABASE_URL"),
    "purge bad period": (["purge", "--older-than", "3q"], "migrated", 2, "--older-than '3q' is a bad retention"),
    "dispatch bad batch": (["dispatch", "--batch", "0"], "migrated", 2, "--batch '0' is not from 1"),
    "dispatch no channel": (["dispatch", "--once"], "migrated", 2, "no channel is configured"),
    "run no schema": (["run"], "no schema", 2, "the database has no schema yet"),
    "demo bad size": (["demo", "--customers", "0"], "migrated", 2, "--customers '0' is not from 1"),
    "deploy no server": (["deploy"], "migrated", 2, "PREFECT_API_URL is not set"),
    "serve address taken": (["serve", "--port", "{port}"], "migrated", 2, "--host 127.0.0.1 --port {port}: "
                            "cannot listen there"),
    # An IPv6 address is tried as IPv6, as uvicorn binds it: taken, not "address family not supported".
    "serve address taken ipv6": (["serve", "--host", "::1", "--port", "{port6}"], "migrated", 2,
                                 "--host ::1 --port {port6}: cannot listen there (Address already in use"),
    "unknown command": (["nosuchcommand"], "migrated", 2, "journeys: No such command 'nosuchcommand'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_failing_command_says_why_in_one_line_with_its_exit_code(case: str, sqlite_url: str, tmp_path: Path,
                                                                   request: pytest.FixtureRequest) -> None:
    args, database, code, start = CASES[case]
    (tmp_path / "customers.csv").write_text("external_id,name\nC1,Ann\n", encoding="utf-8")
    url = {"bad url": BAD_URL, "no schema": sqlite_url}.get(database)
    if url is None:
        url = request.getfixturevalue("db_url")
        from tests.plan_support import Book

        Book(tmp_path / "book", url, request.getfixturevalue("monkeypatch")).customer(external_id="C1")
    # Held while the command runs: the addresses are taken.
    with socket.create_server(("127.0.0.1", 0)) as taken, \
            socket.create_server(("::1", 0), family=socket.AF_INET6) as taken6:
        fill = {"tmp": str(tmp_path), "port": str(taken.getsockname()[1]), "port6": str(taken6.getsockname()[1])}
        done = run_journeys(*(a.format(**fill) for a in args), cwd=tmp_path, stdin="short\n",
                            env={"JOURNEYS_DATABASE_URL": url, "JOURNEYS_CACHE_DIR": str(tmp_path / "cache"),
                                 "JOURNEYS_SECRET_KEY": "a lasting test key"})
    assert "Traceback" not in done.stderr, done.stderr
    assert len(done.error_lines) == 1, done.stderr
    [line] = done.error_lines
    assert line.startswith(start.format(**fill)), line
    assert not line.lower().startswith(("error", "warning")), line
    assert done.code == code, (done.code, line)
