"""Data protection (SPEC §9): key rotation, masked/audited export, retention purge.

Keys are generated per test (never stored in the repository). The rotation and the purge
run on SQLite and PostgreSQL; imports go through the real importer, commands through the CLI.
"""

from __future__ import annotations

import base64
import csv
import os
import stat
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, text
from sqlmodel import Session, col, select
from typer.testing import CliRunner, Result

from engine.cli import build_app
from engine.loop.metrics import compute_metrics
from store.clock import utcnow
from store.crypto import FORMAT_PREFIX, FieldCipher, blob_key_id, key_id
from store.db import make_engine
from store.export import export_customers
from store.importing import import_csv
from store.key_rotation import key_census, rotate_keys
from store.models import AgentTask, AuditLog, Customer, Event, SurveyAnswer
from store.retention import cutoff_for, parse_period, purge
from tests.store import retention_book


def new_key() -> bytes:
    return os.urandom(32)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def cli(*args: str) -> Result:
    return CliRunner().invoke(build_app(), list(args))


# --- field encryption format -------------------------------------------------------------------


def test_values_name_their_key_and_old_values_still_read() -> None:
    old, new = new_key(), new_key()
    blob = FieldCipher(old).encrypt("11010519491231002X")
    assert blob.startswith(FORMAT_PREFIX) and blob_key_id(blob) == key_id(old)
    # A value written before key ids existed: nonce || ciphertext || tag.
    nonce = os.urandom(12)
    legacy = nonce + AESGCM(old).encrypt(nonce, b"110105194912310021", b"customer.id_number")
    assert blob_key_id(legacy) is None
    assert FieldCipher(old).decrypt(legacy) == "110105194912310021"
    # During a rotation a reader holding both keys reads both.
    both = FieldCipher(new, previous_keys=[old])
    assert both.decrypt(blob) == "11010519491231002X"
    assert both.decrypt(legacy) == "110105194912310021"
    assert blob_key_id(both.encrypt("x")) == key_id(new)  # but only ever writes with the current key
    with pytest.raises(InvalidTag):
        FieldCipher(new).decrypt(blob)


def test_previous_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = new_key(), new_key()
    blob = FieldCipher(old).encrypt("A1234567")
    monkeypatch.setenv("JOURNEYS_DATA_KEY", b64(new))
    monkeypatch.setenv("JOURNEYS_DATA_PREVIOUS_KEYS", f"{b64(new_key())}, {b64(old)}")
    assert FieldCipher().decrypt(blob) == "A1234567"


# --- key rotation ----------------------------------------------------------------------------------

def resident_id(serial: int) -> str:
    """A valid 18-character resident ID (GB 11643 check character), born 1949-12-31."""
    body = f"11010519491231{serial:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


ID_NUMBERS = [resident_id(i) for i in range(23)]


def _import_customers(url: str, tmp_path: Path, n: int) -> None:
    path = tmp_path / "customers.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "name", "phone", "email", "id_number"])
        for i in range(n):
            writer.writerow([f"K-{i:03d}", f"张{i}", f"+8613800{i:06d}", f"k{i}@example.com", ID_NUMBERS[i]])
    report = import_csv("customers", path, url)
    assert (report.inserted, report.rejected) == (n, [])


def _stored_ids(url: str) -> dict[str, bytes]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT external_id, id_number_enc FROM customer WHERE id_number_enc IS NOT NULL"))
        result = {r[0]: bytes(r[1]) for r in rows}
    engine.dispose()
    return result


def test_rotation_is_batched_resumable_and_readable_throughout(
    migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = new_key(), new_key()
    monkeypatch.setenv("JOURNEYS_DATA_KEY", b64(old))
    _import_customers(migrated_any_db, tmp_path, 23)
    # One value from before key ids, written straight into the store.
    engine = make_engine(migrated_any_db)
    nonce = os.urandom(12)
    legacy = nonce + AESGCM(old).encrypt(nonce, b"LEGACY00000000001", b"customer.id_number")
    with engine.begin() as conn:
        conn.execute(text("UPDATE customer SET id_number_enc = :v WHERE external_id = 'K-000'"), {"v": legacy})
    engine.dispose()
    before = {k: FieldCipher(old).decrypt(v) for k, v in _stored_ids(migrated_any_db).items()}
    assert len(before) == 23

    # Interrupted after two batches of five: ten values under the new key, the rest under the old.
    first = rotate_keys(migrated_any_db, new, batch_size=5, max_batches=2)
    assert (first.rotated, first.complete) == (10, False)
    kids = Counter(blob_key_id(v) for v in _stored_ids(migrated_any_db).values())
    assert kids[key_id(new)] == 10 and kids[key_id(old)] + kids[None] == 13
    census = key_census(migrated_any_db, [new, old])["customer.id_number_enc"]
    assert census[f"{key_id(new).hex()} (current)"] == 10
    # Old and new coexist: a reader with the new key and the old one as previous reads every value.
    mixed = FieldCipher(new, previous_keys=[old])
    assert {k: mixed.decrypt(v) for k, v in _stored_ids(migrated_any_db).items()} == before

    # The CLI resumes from the saved position and finishes.
    monkeypatch.setenv("JOURNEYS_TEST_NEW_KEY", b64(new))
    result = cli("keys", "rotate", "--new-key-env", "JOURNEYS_TEST_NEW_KEY", "--batch", "5", "--json")
    assert result.exit_code == 0, result.output
    assert '"complete": true' in result.output and '"rotated": 13' in result.output
    assert '"resumed_from": {"customer.id_number_enc"' in result.output
    stored = _stored_ids(migrated_any_db)
    assert {blob_key_id(v) for v in stored.values()} == {key_id(new)}
    assert {k: FieldCipher(new).decrypt(v) for k, v in stored.items()} == before  # nothing lost or altered
    with pytest.raises(InvalidTag):
        FieldCipher(old).decrypt(stored["K-001"])

    # Running it again changes nothing.
    again = rotate_keys(migrated_any_db, new, old_keys=[old], batch_size=7)
    assert (again.rotated, again.already, again.complete) == (0, 23, True)
    assert _stored_ids(migrated_any_db) == stored


def test_rotation_keeps_and_reports_values_no_key_reads(db_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    old, new, stranger = new_key(), new_key(), new_key()
    monkeypatch.setenv("JOURNEYS_DATA_KEY", b64(old))
    _import_customers(db_url, tmp_path, 3)
    foreign = FieldCipher(stranger).encrypt("NOT-OURS")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE customer SET id_number_enc = :v WHERE external_id = 'K-002'"), {"v": foreign})
    engine.dispose()
    report = rotate_keys(db_url, new)
    assert report.rotated == 2 and not report.complete
    assert [(f, kid) for f, _, kid in report.undecryptable] == [("customer.id_number_enc", key_id(stranger).hex())]
    assert _stored_ids(db_url)["K-002"] == foreign


def test_rotate_refuses_without_keys_or_with_the_same_key(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key()
    monkeypatch.delenv("JOURNEYS_DATA_KEY", raising=False)
    monkeypatch.setenv("JOURNEYS_TEST_NEW_KEY", b64(key))
    result = cli("keys", "rotate", "--new-key-env", "JOURNEYS_TEST_NEW_KEY")
    assert result.exit_code == 2 and "JOURNEYS_DATA_KEY is not set" in result.output
    monkeypatch.setenv("JOURNEYS_DATA_KEY", b64(key))
    result = cli("keys", "rotate", "--new-key-env", "JOURNEYS_TEST_NEW_KEY")
    assert result.exit_code == 2 and "already in use" in result.output
    result = cli("keys", "rotate", "--new-key-env", "JOURNEYS_TEST_UNSET_KEY")
    assert result.exit_code == 2 and "JOURNEYS_TEST_UNSET_KEY is not set" in result.output


# --- export --------------------------------------------------------------------------------------------


def _audit(url: str, action: str) -> list[AuditLog]:
    engine = make_engine(url)
    with Session(engine) as session:
        rows = list(session.exec(select(AuditLog).where(AuditLog.action == action).order_by(col(AuditLog.id))))
    engine.dispose()
    return rows


def test_export_is_masked_by_default_and_audited(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_DATA_KEY", b64(new_key()))
    _import_customers(db_url, tmp_path, 4)
    out = tmp_path / "masked.csv"
    result = cli("export", "customers", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "exported 4 customers (masked)" in result.output
    content = out.read_text(encoding="utf-8")
    for i in range(4):
        assert f"13800{i:06d}" not in content and f"k{i}@example.com" not in content
        assert ID_NUMBERS[i] not in content and f"张{i}" not in content
    rows = list(csv.DictReader(content.splitlines()))
    assert rows[1]["phone (masked)"] == "138****0001" and rows[1]["email (masked)"] == "k***@example.com"
    assert rows[1]["id_number (masked)"] == "110***********" + ID_NUMBERS[1][-4:] and rows[1]["name (masked)"] == "张*"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    [audit] = _audit(db_url, "export")
    assert audit.detail["rows"] == 4 and audit.detail["unmasked"] is False and audit.detail["file"] == "masked.csv"


def test_unmasked_export_needs_an_actor_and_is_audited(db_url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_DATA_KEY", b64(new_key()))
    _import_customers(db_url, tmp_path, 3)
    out = tmp_path / "full.csv"
    refused = cli("export", "customers", "--out", str(out), "--unmasked")
    assert refused.exit_code == 2 and "--actor" in refused.output
    assert not out.exists() and _audit(db_url, "export") == []

    result = cli("export", "customers", "--out", str(out), "--unmasked", "--actor", "dpo-li")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert [r["phone"] for r in rows] == [f"+8613800{i:06d}" for i in range(3)]
    assert [r["id_number"] for r in rows] == [ID_NUMBERS[i] for i in range(3)]
    [audit] = _audit(db_url, "export")
    assert (audit.actor, audit.detail["rows"], audit.detail["unmasked"]) == ("dpo-li", 3, True)
    assert audit.at is not None


def test_unmasked_export_without_the_key_writes_nothing(db_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_DATA_KEY", b64(new_key()))
    _import_customers(db_url, tmp_path, 2)
    monkeypatch.delenv("JOURNEYS_DATA_KEY")
    out = tmp_path / "x.csv"
    result = cli("export", "customers", "--out", str(out), "--unmasked", "--actor", "a")
    assert result.exit_code == 2 and "encrypted" in result.output
    assert not out.exists() and list(tmp_path.glob(".x.csv*")) == [] and _audit(db_url, "export") == []
    # Masked works without the key: the ID number is shown as encrypted, never in clear.
    export_customers(db_url, out)
    assert {r["id_number (masked)"] for r in csv.DictReader(out.read_text(encoding="utf-8").splitlines())} == {
        "(encrypted)"}


# --- retention purge ---------------------------------------------------------------------------------


def test_periods() -> None:
    now = datetime(2028, 2, 29, 12, 0, tzinfo=utcnow().tzinfo)
    assert cutoff_for("3y", now) == datetime(2025, 2, 28, 12, 0, tzinfo=now.tzinfo)
    assert cutoff_for("18m", now).date() == date(2026, 8, 29)
    assert cutoff_for("400d", now) == now - timedelta(days=400)
    for bad in ("3", "y", "0y", "3 years", "-1y", ""):
        with pytest.raises(ValueError, match="bad retention period"):
            parse_period(bad)
    # The purge's own bound, whoever calls it: a cut-off past a century would leave the years a
    # moment may have (10**20 years was an OverflowError), and no retention rule means one.
    assert cutoff_for("100y", now).year == 1928 and cutoff_for("36525d", now).year == 1928
    for too_long in ("101y", "1201m", "5219w", "36526d", f"{10**20}y"):
        with pytest.raises(ValueError, match="longer than a century"):
            cutoff_for(too_long, now)


AGGREGATES = {
    "touches": "SELECT c.tier, t.journey_id, count(*) FROM touch t JOIN customer c ON c.id = t.customer_id "
               "GROUP BY c.tier, t.journey_id",
    "outcomes": "SELECT c.tier, o.kind, count(*) FROM outcome o JOIN customer c ON c.id = o.customer_id "
                "GROUP BY c.tier, o.kind",
    "tasks": "SELECT c.tier, a.journey_id, a.outcome_code, count(*) FROM agent_task a "
             "JOIN customer c ON c.id = a.customer_id GROUP BY c.tier, a.journey_id, a.outcome_code",
    "surveys": "SELECT c.tier, count(*), sum(s.score) FROM survey_answer s JOIN customer c ON c.id = s.customer_id "
               "GROUP BY c.tier",
    "customers": "SELECT tier, branch, count(*) FROM customer GROUP BY tier, branch",
    "events": "SELECT type, count(*) FROM event GROUP BY type",
}


def _aggregates(url: str, now: datetime) -> dict[str, Any]:
    engine = make_engine(url)
    with engine.connect() as conn:
        figures: dict[str, Any] = {name: sorted(tuple(r) for r in conn.execute(text(sql)))
                                   for name, sql in AGGREGATES.items()}
    engine.dispose()
    start, end = now - timedelta(days=5 * 365), now - timedelta(days=3 * 365)
    for by in ("tier", "journey", "branch"):
        report = compute_metrics(start, end, by, now=now, url=url)
        figures[f"metrics_by_{by}"] = (report.total, report.groups)
    return figures


def test_purge_anonymises_past_retention_and_keeps_every_aggregate(migrated_any_db: str) -> None:
    url = migrated_any_db
    now = utcnow()
    groups = retention_book.build(url, now)
    before = _aggregates(url, now)
    assert before["touches"]  # the book is not empty

    dry = purge(url, "3y", dry_run=True, now=now)
    assert dry.customer_ids == groups["old"]
    assert _aggregates(url, now) == before and _audit(url, "purge") == []

    report = purge(url, "3y", actor="dpo-wang", now=now)
    assert report.customer_ids == groups["old"]
    assert (report.cancelled_touches, report.exited_enrollments) == (10, 10)
    after = _aggregates(url, now)
    assert after == before  # counts per tier/journey/branch and every §8 metric are unchanged

    engine = make_engine(url)
    with Session(engine) as session:
        for customer in session.exec(select(Customer).order_by(col(Customer.id))):
            purged = customer.id in groups["old"]
            assert (customer.anonymised_at is not None) == purged
            if purged:
                assert customer.name == "匿名" and customer.external_id == f"anonymised-{customer.id}"
                assert (customer.phone, customer.email, customer.wechat_openid, customer.id_number_enc,
                        customer.birthday, customer.birth_md) == (None,) * 6
                assert not (customer.consent_sms or customer.consent_wechat or customer.consent_email)
                assert customer.attributes == {} and customer.tier is not None
            else:
                assert customer.phone and customer.external_id.startswith("R-")
        old = groups["old"]
        notes = session.exec(select(AgentTask.notes).where(col(AgentTask.customer_id).in_(old))).all()
        comments = session.exec(select(SurveyAnswer.comment).where(col(SurveyAnswer.customer_id).in_(old))).all()
        events = session.exec(select(Event.data).where(col(Event.customer_id).in_(old))).all()
        assert set(notes) == {None} and set(comments) == {None}
        assert all("text" not in data and data["channel"] == "sms" for data in events)
        kept = session.exec(select(func.count()).select_from(AgentTask).where(col(AgentTask.notes).is_not(None))).one()
        assert kept == 20
    engine.dispose()

    audits = _audit(url, "purge")
    assert sorted(a.target_id for a in audits if a.target_id != "*") == sorted(str(i) for i in groups["old"])
    [summary] = [a for a in audits if a.target_id == "*"]
    assert summary.actor == "dpo-wang" and summary.detail["customers"] == 10

    # Nothing left to purge: a second run changes nothing.
    assert purge(url, "3y", now=now).customers == 0
    assert _aggregates(url, now) == before


def test_purge_command(db_url: str) -> None:
    groups = retention_book.build(db_url, utcnow())
    result = cli("purge", "--older-than", "3y", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would anonymise 10 customers" in result.output
    result = cli("purge", "--older-than", "3y", "--actor", "dpo")
    assert result.exit_code == 0 and "anonymised 10 customers" in result.output
    assert "13900" not in result.output and "@example.com" not in result.output
    bad = cli("purge", "--older-than", "three years")
    assert bad.exit_code == 2 and "bad retention period" in bad.output
    assert len(groups["old"]) == 10
