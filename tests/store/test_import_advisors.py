"""``journeys import customers`` with an ``advisor`` column: it names the console user who is the
customer's dedicated advisor. A row naming someone who cannot be one (no such user, a deactivated
user, a role that does not work tasks) is reported at its line and the good rows go in; an empty
cell clears the advisor, and a file without the column leaves it alone."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner, Result

from engine.cli import build_app
from store.bulk_writer import CUSTOMER, table
from store.db import make_engine
from store.models import AppUser

USER = table(AppUser)


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(build_app(), list(args), input=stdin)


def add_user(name: str, role: str) -> None:
    result = run("users", "add", name, "--role", role, "--password-stdin", stdin="a long enough passphrase 1\n")
    assert result.exit_code == 0, result.output


def advisors(db_url: str) -> dict[str, str | None]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            names = dict(conn.execute(select(USER.c.id, USER.c.username)).all())
            return {r.external_id: names.get(r.advisor_id) for r in
                    conn.execute(select(CUSTOMER.c.external_id, CUSTOMER.c.advisor_id)).all()}
    finally:
        engine.dispose()


def test_advisor_column_names_a_user_who_works_tasks(db_url: str, tmp_path: Path) -> None:
    add_user("ann", "agent")
    add_user("sam", "supervisor")
    add_user("olga", "ops")
    add_user("carl", "compliance")
    add_user("gone", "agent")
    assert run("users", "disable", "gone").exit_code == 0
    source = tmp_path / "customers.csv"
    source.write_text(
        "external_id,name,tier,advisor\n"
        "C1,张三,diamond,ann\n"
        "C2,李四,diamond,nobody\n"
        "C3,王五,diamond,olga\n"
        "C4,赵六,diamond,sam\n"
        "C5,钱七,diamond,gone\n"
        "C6,孙八,diamond,carl\n"
        "C7,周九,gold,\n", encoding="utf-8")
    result = run("import", "customers", str(source))
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"{source}:3: advisor: no console user 'nobody'",
        f"{source}:4: advisor: user 'olga' is ops, who does not work tasks: an advisor must be an agent or "
        "a supervisor",
        f"{source}:6: advisor: user 'gone' is deactivated",
        f"{source}:7: advisor: user 'carl' is compliance, who does not work tasks: an advisor must be an agent or "
        "a supervisor",
    ]
    assert advisors(db_url) == {"C1": "ann", "C4": "sam", "C7": None}

    # An empty cell clears the advisor; a file without the column leaves it alone.
    source.write_text("external_id,name,advisor\nC1,张三,\nC4,赵六,ann\n", encoding="utf-8")
    assert run("import", "customers", str(source)).exit_code == 0
    source.write_text("external_id,name\nC4,赵六\n", encoding="utf-8")
    assert run("import", "customers", str(source)).exit_code == 0
    assert advisors(db_url) == {"C1": None, "C4": "ann", "C7": None}


def test_a_deactivated_advisor_stays_with_the_customers_who_have_them(db_url: str, tmp_path: Path) -> None:
    # An export of the book imported again names the advisors customers have, some of them deactivated
    # since: those rows keep their advisor; no customer gets a deactivated one anew.
    add_user("ann", "agent")
    add_user("bea", "agent")
    source = tmp_path / "customers.csv"
    source.write_text("external_id,name,advisor\nC1,张三,ann\nC2,李四,bea\nC3,王五,\n", encoding="utf-8")
    assert run("import", "customers", str(source)).exit_code == 0
    assert run("users", "disable", "ann").exit_code == 0

    source.write_text(
        "external_id,name,advisor\n"
        "C1,张三丰,ann\n"    # keeps ann, the name corrected
        "C2,李四,ann\n"      # bea's customer given to ann: refused
        "C3,王五,ann\n"      # no advisor yet: refused
        "C4,赵六,ann\n", encoding="utf-8")  # new: refused
    result = run("import", "customers", str(source))
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [f"{source}:{line}: advisor: user 'ann' is deactivated" for line in (3, 4, 5)]
    assert advisors(db_url) == {"C1": "ann", "C2": "bea", "C3": None}
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(CUSTOMER.c.name).where(CUSTOMER.c.external_id == "C1")).scalar_one() == "张三丰"
    finally:
        engine.dispose()
