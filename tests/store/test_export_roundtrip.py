"""``journeys export customers --unmasked`` then ``journeys import customers`` into a fresh database
gives back the same customers: tier and score, channels, consents with their source and time (a
marketing consent never given apart included), advisor, ID number, attributes, whatever their
cells hold. Anonymised customers are skipped by the import, saying so; a masked export is refused."""

from __future__ import annotations

import base64
import csv
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner, Result

from engine.cli import build_app
from engine.demo.seeding import seed_book
from store.bulk_writer import CLAIM, CUSTOMER, POLICY, table
from store.clock import as_utc, utcnow
from store.crypto import FieldCipher
from store.db import make_engine
from store.importing.reading import KNOWN
from store.migrate import upgrade
from store.models import AppUser, AuditLog
from tests.db_support import connected

USER = table(AppUser)
AUDIT = table(AuditLog)
# Kept by the store for itself, not part of what a customer is: a new database has its own.
OWN = {"id", "created_at", "updated_at", "tier_updated_at", "advisor_id", "id_number_enc"}
SEEDED = 40


def run(url: str, *args: str) -> Result:
    return CliRunner(env={"JOURNEYS_DATABASE_URL": url}).invoke(build_app(), list(args))


def add_user(url: str, name: str, role: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(USER.insert().values(username=name, role=role, password_hash="-", display_name="", locale="en",
                                          on_shift=True, active=True, failed_logins=0, created_at=utcnow()))
    engine.dispose()


def customers(url: str) -> dict[str, dict[str, Any]]:
    """Every customer by external id, as comparable values: times in UTC, the advisor by username,
    the ID number decrypted."""
    cipher = FieldCipher()
    with connected(url) as conn:
        usernames = {u.id: u.username for u in conn.execute(select(USER.c.id, USER.c.username))}
        found = {}
        for r in conn.execute(select(CUSTOMER)).mappings():
            values = {k: as_utc(v) if isinstance(v, datetime) else v for k, v in r.items() if k not in OWN}
            values["advisor"] = usernames.get(r["advisor_id"])
            values["id_number"] = cipher.decrypt(bytes(r["id_number_enc"])) if r["id_number_enc"] else None
            found[r["external_id"]] = values
    return found


def _change(url: str, customer: str, **values: Any) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(update(CUSTOMER).where(CUSTOMER.c.external_id == customer).values(**values))
    engine.dispose()


def _book(url: str) -> list[str]:
    """A seeded book with what seeding leaves out: advisors, marketing consents given apart, an ID
    number, attributes a spreadsheet or the CSV syntax would bend, and an anonymised customer."""
    seed_book(url, SEEDED, 7, as_of=date(2026, 11, 1))
    add_user(url, "adv-wang", "agent")
    add_user(url, "sup-li", "supervisor")
    with connected(url) as conn:
        ids = [r.external_id for r in conn.execute(select(CUSTOMER.c.external_id).order_by(CUSTOMER.c.id))]
        users = {u.username: u.id for u in conn.execute(select(USER.c.username, USER.c.id))}
    when = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    _change(url, ids[0], advisor_id=users["adv-wang"], consent_sms_marketing=False,
            consent_sms_marketing_source="opt_out", consent_sms_marketing_at=when,
            id_number_enc=FieldCipher().encrypt("11010519491231002X"))
    _change(url, ids[1], advisor_id=users["sup-li"], consent_email_marketing=True,
            consent_email_marketing_source="app", consent_email_marketing_at=when,
            preferred_channels=["email", "push", "sms"], tier=None, tier_score=None)
    _change(url, ids[2], name="'=HYPERLINK(\"x\")", email="+tag@example.com", branch="-", attributes={
        "note": 'called, said "later"\nsecond line', "formula": "=1+1", "quote": "'", "ratio": 0.5,
        "whole": 1200.0, "flag": False, "minus": -3, "big": 10**20, "tiny": 1e-07,
    })
    anonymised = ids[3]
    _change(url, anonymised, external_id="anonymised-4", name="匿名", phone=None, email=None, wechat_openid=None,
            push_registration_id=None, birthday=None, birth_md=None, attributes={}, anonymised_at=when)
    return [i for i in ids if i != anonymised]


@pytest.fixture
def data_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_DATA_KEY", base64.b64encode(os.urandom(32)).decode())


@pytest.mark.usefixtures("data_key")
def test_an_unmasked_export_imports_into_a_fresh_database_as_the_same_customers(
    migrated_any_db: str, tmp_path: Path,
) -> None:
    kept = _book(migrated_any_db)
    out = tmp_path / "export.csv"
    exported = run(migrated_any_db, "export", "customers", "--out", str(out), "--unmasked", "--actor", "dpo")
    assert exported.exit_code == 0, exported.output

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(fresh)
    add_user(fresh, "adv-wang", "agent")  # users are not exported: the advisors exist there first
    add_user(fresh, "sup-li", "supervisor")
    imported = run(fresh, "import", "customers", str(out))

    assert imported.exit_code == 0, imported.output
    assert imported.stdout.strip() == (
        f"{out}: {SEEDED} rows; imported {SEEDED - 1} new, updated 0, unchanged 0, skipped 1, rejected 0")
    # The fourth customer, anonymised, on line 6: the third one's note runs over two lines.
    assert imported.stderr.splitlines() == [
        f"{out}:6: skipped: an anonymised customer (anonymised_at is set); nothing of a person is left to import"]
    source, target = customers(migrated_any_db), customers(fresh)
    assert sorted(target) == sorted(kept)
    for external_id in kept:
        assert target[external_id] == source[external_id], external_id
    assert target[kept[2]]["attributes"]["note"] == 'called, said "later"\nsecond line'
    assert target[kept[0]]["consent_sms_marketing"] is False and target[kept[4]]["consent_sms_marketing"] is None

    # Into the database it came from, the export changes no customer, and the report says so.
    again = run(migrated_any_db, "import", "customers", str(out))
    assert again.exit_code == 0, again.output
    assert f"updated 0, unchanged {SEEDED - 1}, skipped 1, rejected 0" in again.stdout, again.output
    assert customers(migrated_any_db) == source


@pytest.mark.usefixtures("data_key")
def test_a_masked_export_is_refused_by_the_import(db_url: str, tmp_path: Path) -> None:
    _book(db_url)
    out = tmp_path / "masked.csv"
    assert run(db_url, "export", "customers", "--out", str(out)).exit_code == 0
    before = customers(db_url)

    result = run(db_url, "import", "customers", str(out))

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{out}: a masked export cannot be imported: its personal data is masked "
        "(export with --unmasked --actor NAME to move customers); nothing imported",
    ]
    assert customers(db_url) == before
    header = next(csv.reader(out.open(encoding="utf-8", newline="")))
    assert "name (masked)" in header and "phone (masked)" in header and "tier" in header
    assert not any(column.startswith("attr.") for column in header)  # free values nothing masks


def records(url: str, kind: str) -> dict[str, dict[str, Any]]:
    """Every policy or claim by external id, as comparable values: its customer and policy by external id."""
    rows, own = (POLICY, {"id", "customer_id"}) if kind == "policies" else (CLAIM, {"id", "customer_id", "policy_id"})
    with connected(url) as conn:
        customer_ids = {r.id: r.external_id for r in conn.execute(select(CUSTOMER.c.id, CUSTOMER.c.external_id))}
        policy_ids = {r.id: r.external_id for r in conn.execute(select(POLICY.c.id, POLICY.c.external_id))}
        found = {}
        for r in conn.execute(select(rows)).mappings():
            values = {k: as_utc(v) if isinstance(v, datetime) else v for k, v in r.items() if k not in own}
            values["customer"] = customer_ids[r["customer_id"]]
            if kind == "claims":
                values["policy"] = policy_ids.get(r["policy_id"])
            found[r["external_id"]] = values
    return found


def _claims(url: str, customers_: list[str]) -> None:
    """Claims the seeding may not make: with and without a policy and a product line, settled or not."""
    with connected(url) as conn:
        owners = {r.external_id: r.id for r in conn.execute(select(CUSTOMER.c.external_id, CUSTOMER.c.id))}
        policy = conn.execute(select(POLICY.c.id, POLICY.c.customer_id).limit(1)).first()
    assert policy is not None
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(CLAIM.insert(), [
            {"external_id": "CL-1", "customer_id": policy.customer_id, "policy_id": policy.id, "product_line": None,
             "filed_at": datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), "settled_at": None, "amount": 1234.5,
             "status": "filed"},
            {"external_id": "CL-2", "customer_id": owners[customers_[1]], "policy_id": None, "product_line": "health",
             "filed_at": datetime(2026, 1, 2, tzinfo=UTC), "settled_at": datetime(2026, 2, 3, 4, 5, tzinfo=UTC),
             "amount": 0.1, "status": "settled"},
        ])
    engine.dispose()


@pytest.mark.usefixtures("data_key")
def test_customers_policies_and_claims_exported_import_into_a_fresh_database_as_the_same_book(
    migrated_any_db: str, tmp_path: Path,
) -> None:
    """Every kind the import takes is exported in its columns: policies and claims had no export, so a book
    moved by export and import lost them."""
    kept = _book(migrated_any_db)
    _claims(migrated_any_db, kept)
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(fresh)
    add_user(fresh, "adv-wang", "agent")
    add_user(fresh, "sup-li", "supervisor")
    for kind in ("customers", "policies", "claims"):
        out = tmp_path / f"{kind}.csv"
        extra = ["--unmasked", "--actor", "dpo"] if kind == "customers" else ["--actor", "dpo"]
        exported = run(migrated_any_db, "export", kind, "--out", str(out), *extra)
        assert exported.exit_code == 0, exported.output
        assert next(csv.reader(out.open(encoding="utf-8", newline="")))[:len(KNOWN[kind])] == list(KNOWN[kind])
        imported = run(fresh, "import", kind, str(out))
        # The anonymised customer is skipped, and so are the policies and claims of theirs.
        assert imported.exit_code in (0, 1), imported.output
    for kind in ("policies", "claims"):
        source, target = records(migrated_any_db, kind), records(fresh, kind)
        assert source, kind
        anonymised = {k for k, v in source.items() if v["customer"] not in kept}
        assert {k: v for k, v in source.items() if k not in anonymised} == target, kind
    with connected(migrated_any_db) as conn:
        audited = [r.target_type for r in conn.execute(select(AUDIT.c.target_type).where(AUDIT.c.action == "export"))]
    assert sorted(audited) == ["claim", "customer", "policy"]
