"""``journeys import customers``: device registration ids and consent per purpose (issue 19)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from store.db import make_engine
from store.models import Customer
from tests.store.test_import import import_clean, import_rejecting, run, write

HEADER = ("external_id,name,phone,push_registration_id,consent_sms,consent_sms_marketing,consent_push,"
          "consent_push_marketing,consent_push_source\n")


def customers(url: str) -> dict[str, Customer]:
    engine = make_engine(url)
    with Session(engine) as s:
        found = {c.external_id: c for c in s.exec(select(Customer)).all()}
    engine.dispose()
    return found


def test_registration_ids_and_marketing_consent_are_imported_and_updated(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    import_clean("customers", source, HEADER
                 + "C1,张伟,+8613812345678,170976fa8a8620ca0d4,yes,no,yes,yes,app\n"
                 + "C2,李娜,+8613812345679,,yes,,no,,\n")
    rows = customers(db_url)
    c1, c2 = rows["C1"], rows["C2"]
    assert (c1.push_registration_id, c1.consent_push, c1.consent_push_source) == ("170976fa8a8620ca0d4", True, "app")
    assert (c1.consent_sms, c1.consent_sms_marketing, c1.consent_push_marketing) == (True, False, True)
    assert c2.push_registration_id is None and c2.consent_push is False and c2.consent_sms_marketing is False
    # A file without the marketing columns leaves what is stored alone.
    import_clean("customers", tmp_path / "again.csv",
                 "external_id,name,push_registration_id\nC1,张伟,1a0018970af2a5b1c4d\n")
    c1 = customers(db_url)["C1"]
    assert (c1.push_registration_id, c1.consent_sms_marketing, c1.consent_push) == ("1a0018970af2a5b1c4d", False, True)


def test_a_marketing_consent_source_needs_its_consent_column(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("external_id,name,consent_sms_marketing_source\nC1,张伟,app\n", encoding="utf-8")
    result = run("import", "customers", str(source))
    assert result.exit_code == 2
    assert "column consent_sms_marketing_source needs the column consent_sms_marketing" in result.output


def test_a_registration_id_that_is_not_one_is_a_bad_row_at_its_line(db_url: str, tmp_path: Path) -> None:
    """A phone number, an e-mail address, a name or a cut value in the column would have been stored and
    refused by JPush (1011) at the first push; now each is its row's reason, the value not shown."""
    source = write(tmp_path / "customers.csv", "external_id,name,push_registration_id\n"
                   "C1,张伟,170976fa8a8620ca0d4\n"
                   "C2,李娜,8613812345678\n"
                   "C3,王伟,wang.wei@example.com\n"
                   "C4,赵六,170976fa8a\n"
                   "C5,孙七,张伟的手机\n"
                   "C6,周八,1A0018970AF2A5B1C4D\n")
    import_rejecting("customers", source, [
        (3, "push_registration_id is a phone or ID number, not a JPush registration id (138****5678)"),
        (4, "push_registration_id is not a JPush registration id: '.' at position 5 (letters and digits only)"),
        (5, "push_registration_id is not a JPush registration id: 10 characters (12 to 64)"),
        (6, "push_registration_id is not a JPush registration id: U+5F20 at position 1 (letters and digits only)"),
    ])
    stored = {k: c.push_registration_id for k, c in customers(db_url).items()}
    assert stored == {"C1": "170976fa8a8620ca0d4", "C6": "1A0018970AF2A5B1C4D"}
