"""Ids of the purge's form (``anonymised-<id>``, ``anonymised-policy-<id>``, …) name only what
``journeys purge`` anonymised. A source system that created a customer, policy, claim or event under
one (by mistake, or to stop the purge) made the purge of the customer whose stand-in it was fail on the
unique id, on every run after, and her personal data stayed past its retention period. Such a row is
now refused where it comes in; the purge then runs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from engine.cli import build_app
from store.bulk_writer import CLAIM, CUSTOMER, POLICY, table
from store.clock import utcnow
from store.db import make_engine
from store.importing import import_csv
from store.models import Event
from store.retention import purge
from tests.db_support import count, rows


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _rejected(url: str, kind: str, path: Path) -> list[tuple[int, str]]:
    return [(r.line, r.reason) for r in import_csv(kind, path, url).rejected]


def _reason(external_id: str, column: str = "external_id") -> str:
    return (f"{column} {external_id!r} starts with 'anonymised-', which names only the records "
            "`journeys purge` anonymised: give the source system's own id")


def test_a_file_cannot_take_the_purges_ids_and_the_purge_runs(migrated_any_db: str, tmp_path: Path) -> None:
    url = migrated_any_db
    assert _rejected(url, "customers", _write(tmp_path / "first.csv", "external_id,name\nK1,Kim\n")) == []
    [(kim,)] = rows(url, CUSTOMER, "id")

    customers = _write(tmp_path / "c.csv", f"external_id,name\nanonymised-{kim},Mallory\nK2,Kai\nanonymised-x,X\n")
    assert _rejected(url, "customers", customers) == [(2, _reason(f"anonymised-{kim}")), (4, _reason("anonymised-x"))]
    policies = _write(tmp_path / "p.csv", "external_id,customer_external_id,product_line,annual_premium,start_date,"
                      "expiry_date\nanonymised-policy-1,K2,motor,100,2020-01-01,2021-01-01\n"
                      "P2,K2,motor,100,2020-01-01,2021-01-01\n")
    assert _rejected(url, "policies", policies) == [(2, _reason("anonymised-policy-1"))]
    claims = _write(tmp_path / "l.csv", "external_id,customer_external_id,filed_at,amount\n"
                    "anonymised-claim-1,K2,2020-05-01,10\nL2,K2,2020-05-01,10\n")
    assert _rejected(url, "claims", claims) == [(2, _reason("anonymised-claim-1"))]
    assert [r[0] for r in rows(url, CUSTOMER, "external_id")] == ["K1", "K2"]
    assert (rows(url, POLICY, "external_id"), rows(url, CLAIM, "external_id")) == ([("P2",)], [("L2",)])

    emitted = CliRunner().invoke(build_app(), ["event", "emit", "app.login", "--customer", "K2",
                                               "--id", "anonymised-event-1"])
    assert emitted.exit_code == 2 and _reason("anonymised-event-1", "--id") in " ".join(emitted.output.split())
    assert count(url, table(Event)) == 0

    # Kim, with nothing in force for six years, is past a year's retention: the purge anonymises her.
    now = utcnow()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(update(CUSTOMER).where(CUSTOMER.c.id == kim).values(created_at=now - timedelta(days=6 * 365)))
    engine.dispose()
    report = purge(url, "1y", actor="test", now=now)
    assert report.customer_ids == [kim]
    assert rows(url, CUSTOMER, "id", "external_id", "name") == [(kim, f"anonymised-{kim}", "匿名"),
                                                                 (kim + 1, "K2", "Kai")]
    # Her stored row keeps its refusal of its own: an anonymised customer takes no personal data again.
    assert _rejected(url, "customers", _write(tmp_path / "again.csv", f"external_id,name\nanonymised-{kim},Kim\n")) == [
        (2, f"customer 'anonymised-{kim}' is anonymised: it takes no personal data again")]
