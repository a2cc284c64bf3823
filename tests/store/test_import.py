"""``journeys import``: CSV upserts by external id with exact per-row reports, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import csv
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from engine.cli import build_app
from store.bulk_writer import CLAIM, CUSTOMER, POLICY, TIER_CHANGE
from store.crypto import FieldCipher
from tests.db_support import count, rows

CUSTOMERS = """\
external_id,name,phone,email,birthday,timezone,locale,tier,consent_sms,consent_sms_source,preferred_channels,attr.logins_90d
C1,张三,13812345678,Zhang.San@Example.COM,1980-02-29,Asia/Shanghai,zh-CN,gold,yes,app,sms;wechat,12
C2,李四,12345,li@example,1980-13-01,Mars/Base,fr,bronze,maybe,,fax,
C3,王五,+86 139 1234 5678,,,,,,no,,,
C1,张三丰,13812345678,,,,,,,,,
C4,"赵
六",010-12345678,,,,,,,,,
C5,Alice Wu,+1 650 253 0000,alice@example.org,1990-07-01,America/Los_Angeles,en,silver,true,policy_form,"email,sms",3
C6,钱七
"""

EXPECTED_REJECTS = [
    (
        3,
        "phone is not a valid number (*****); email is not a valid address (l***@example); "
        "birthday '1980-13-01' is not a date (YYYY-MM-DD); "
        "timezone 'Mars/Base' is not a time zone name (e.g. Asia/Shanghai); locale 'fr' is not one of zh-CN, en; "
        "tier 'bronze' is not one of diamond, platinum, gold, silver, potential; "
        "preferred_channels 'fax' is not one of sms, wechat, email, push; "
        "consent_sms 'maybe' is not a consent value (yes/no, true/false, 1/0, 是/否)",
    ),
    (5, "external_id 'C1' repeats line 2"),
    # The record starts on line 6 and ends on 7; a line break is no part of a name.
    (6, "name contains a control character (U+000A at position 2); phone is not a mobile number (010****5678)"),
    (9, "2 fields where the header has 12"),
]


def run(*args: str) -> Result:
    return CliRunner().invoke(build_app(), list(args))


def import_rejecting(kind: str, source: Path, rejects: list[tuple[int, str]]) -> Result:
    """Imports a file with bad rows: it must exit 1 and report each (line, reason) in order, nothing else."""
    result = run("import", kind, str(source))
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [f"{source}:{line}: {reason}" for line, reason in rejects]
    return result


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def import_clean(kind: str, source: Path, text: str | None = None) -> Result:
    """Imports a file (written from ``text`` first when given) whose rows are all good: exit 0, nothing rejected."""
    if text is not None:
        write(source, text)
    result = run("import", kind, str(source))
    assert result.exit_code == 0 and "rejected 0" in result.stdout, result.output
    return result


def test_good_rows_imported_bad_rows_reported_by_line(db_url: str, tmp_path: Path) -> None:
    source = write(tmp_path / "customers.csv", CUSTOMERS)
    result = import_rejecting("customers", source, EXPECTED_REJECTS)

    assert f"{source}: 7 rows; imported 3 new, updated 0, unchanged 0, rejected 4" in result.stdout
    # Nothing printed shows a phone number or e-mail address unmasked.
    for secret in ("13812345678", "li@example", "12345678", "Zhang.San"):
        assert secret not in result.output

    rejects = source.with_name("customers.rejects.csv")
    with rejects.open(encoding="utf-8", newline="") as handle:
        table = list(csv.reader(handle))
    assert table[0][-2:] == ["line", "reason"]
    assert [(int(r[-2]), r[-1]) for r in table[1:]] == EXPECTED_REJECTS
    assert table[1][:3] == ["C2", "李四", "12345"]  # the row as it was, ready to be corrected
    assert table[3][1] == "赵\n六"
    assert os.stat(rejects).st_mode & 0o077 == 0  # personal data: owner only

    got = rows(db_url, CUSTOMER, "external_id", "name", "phone", "email", "birth_md", "timezone", "locale", "tier",
               "consent_sms", "consent_sms_source", "preferred_channels", "attributes")
    assert got == [
        ("C1", "张三", "+8613812345678", "Zhang.San@example.com", 229, "Asia/Shanghai", "zh-CN", "gold", True, "app",
         ["sms", "wechat"], {"logins_90d": 12}),
        ("C3", "王五", "+8613912345678", None, None, "Asia/Shanghai", "zh-CN", None, False, None, [], {}),
        ("C5", "Alice Wu", "+16502530000", "alice@example.org", 701, "America/Los_Angeles", "en", "silver", True,
         "policy_form", ["email", "sms"], {"logins_90d": 3}),
    ]
    # Imported tiers are history too.
    assert sorted(rows(db_url, TIER_CHANGE, "to_tier", "reason")) == [("gold", "import"), ("silver", "import")]


def test_rejects_file_can_be_named_and_corrected_file_reimported(db_url: str, tmp_path: Path) -> None:
    source = write(tmp_path / "customers.csv", CUSTOMERS)
    rejects = tmp_path / "out" / "bad.csv"
    rejects.parent.mkdir()
    assert run("import", "customers", str(source), "--rejects", str(rejects)).exit_code == 1
    assert rejects.exists() and not source.with_name("customers.rejects.csv").exists()

    # Fix the rows in the rejects file and import it as it is (its line/reason columns are ignored).
    with rejects.open(encoding="utf-8", newline="") as handle:
        table = list(csv.reader(handle))
    header, fixed = table[0], []
    for row in table[1:]:
        cells = dict(zip(header, row, strict=True))
        if cells["external_id"] == "C2":
            cells.update(phone="13900001111", email="li@example.com", birthday="1981-01-13", timezone="Asia/Urumqi",
                         locale="zh-CN", tier="potential", consent_sms="no", preferred_channels="wechat")
            fixed.append([cells[h] for h in header])
    corrected = tmp_path / "corrected.csv"
    with corrected.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *fixed])
    result = run("import", "customers", str(corrected))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert rows(db_url, CUSTOMER, "external_id", "phone", "timezone")[1] == ("C2", "+8613900001111", "Asia/Urumqi")


def test_reimport_is_idempotent_and_applies_updates(migrated_any_db: str, tmp_path: Path) -> None:
    url = migrated_any_db
    customers = write(tmp_path / "c.csv", (
        "external_id,name,phone,consent_sms,consent_wechat,tier,attr.referrals\n"
        "K1,周一,13811112222,yes,no,gold,2\n"
        "K2,吴二,13833334444,no,yes,silver,\n"
    ))
    policies = write(tmp_path / "p.csv", (
        "external_id,customer_external_id,product_line,annual_premium,start_date,expiry_date,status\n"
        "P1,K1,motor,1200.50,2026-01-01,2026-12-31,active\n"
        "P2,K2,health,800,2026-03-01,2027-02-28,\n"
    ))
    claims = write(tmp_path / "l.csv", (
        "external_id,customer_external_id,policy_external_id,filed_at,settled_at,amount\n"
        "L1,K1,P1,2026-05-01T09:30:00+08:00,2026-05-20,3000\n"
        "L2,K2,,2026-06-01 10:00,,150.5\n"
    ))
    for kind, path in (("customers", customers), ("policies", policies), ("claims", claims)):
        result = run("import", kind, str(path))
        assert result.exit_code == 0, result.output
        assert "imported 2 new, updated 0, unchanged 0, rejected 0" in result.stdout
    before = {
        "customers": rows(url, CUSTOMER, "external_id", "phone", "consent_sms", "consent_sms_at", "tier",
                          "attributes", "created_at"),
        "policies": rows(url, POLICY, "external_id", "customer_id", "annual_premium", "status"),
        "claims": rows(url, CLAIM, "external_id", "policy_id", "filed_at", "settled_at", "status", "amount"),
    }
    assert [c[-2:] for c in before["claims"]] == [("settled", 3000.0), ("filed", 150.5)]
    # Offsets honoured; a time without one is read in Asia/Shanghai.
    assert before["claims"][0][2] == datetime(2026, 5, 1, 1, 30, tzinfo=UTC)
    assert before["claims"][1][2] == datetime(2026, 6, 1, 2, 0, tzinfo=UTC)

    # The same files again: nothing new, nothing changed (consent time and tier history included), and
    # the report says so rather than "updated".
    for kind, path in (("customers", customers), ("policies", policies), ("claims", claims)):
        result = run("import", kind, str(path))
        assert result.exit_code == 0, result.output
        assert "imported 0 new, updated 0, unchanged 2, rejected 0" in result.stdout
    assert rows(url, CUSTOMER, "external_id", "phone", "consent_sms", "consent_sms_at", "tier", "attributes",
                "created_at") == before["customers"]
    assert rows(url, POLICY, "external_id", "customer_id", "annual_premium", "status") == before["policies"]
    assert rows(url, CLAIM, "external_id", "policy_id", "filed_at", "settled_at", "status",
                "amount") == before["claims"]
    assert count(url, TIER_CHANGE) == 2

    # Changed values are applied in place; columns left out of the file keep their values.
    write(customers, "external_id,name,phone,consent_sms,tier\nK1,周一,13899990000,no,platinum\n")
    result = run("import", "customers", str(customers))
    assert "imported 0 new, updated 1, unchanged 0, rejected 0" in result.stdout
    k1 = rows(url, CUSTOMER, "external_id", "phone", "consent_sms", "consent_sms_source", "tier", "attributes")[0]
    assert k1 == ("K1", "+8613899990000", False, "import", "platinum", {"referrals": 2})
    assert count(url, CUSTOMER) == 2
    assert sorted(rows(url, TIER_CHANGE, "to_tier", "from_tier")) == [
        ("gold", None), ("platinum", "gold"), ("silver", None)
    ]
    write(policies, policies.read_text(encoding="utf-8").replace("1200.50", "1300").replace(",active", ",renewed"))
    import_clean("policies", policies)
    assert rows(url, POLICY, "external_id", "annual_premium", "status")[0] == ("P1", 1300.0, "renewed")
    assert count(url, POLICY) == 2


def test_policies_and_claims_must_reference_known_customers_and_their_own_policies(db_url: str,
                                                                                   tmp_path: Path) -> None:
    import_clean("customers", tmp_path / "c.csv", "external_id,name\nA,甲\nB,乙\n")
    policies = write(tmp_path / "p.csv", (
        "external_id,customer_external_id,product_line,annual_premium,start_date,expiry_date\n"
        "PA,A,motor,900,2026-01-01,2026-12-31\n"
        "PX,NOBODY,health,800,2026-01-01,2026-12-31\n"
        "PB,B,boat,-5,2026/01/01,2025-12-31\n"
        "PC,B,life,abc,2026-01-01,2025-12-31\n"
    ))
    import_rejecting("policies", policies, [
        (3, "unknown customer external id 'NOBODY'"),
        (4, "product_line 'boat' is not one of motor, health, life, property, accident; "
            "annual_premium -5 is negative; start_date '2026/01/01' is not a date (YYYY-MM-DD)"),
        (5, "annual_premium 'abc' is not a number; expiry_date 2025-12-31 is before start_date 2026-01-01"),
    ])
    assert rows(db_url, POLICY, "external_id") == [("PA",)]

    claims = write(tmp_path / "l.csv", (
        "external_id,customer_external_id,policy_external_id,filed_at,settled_at,amount,status\n"
        "L1,B,PA,2026-02-01,,100,\n"
        "L2,A,PZ,2026-02-01,,100,\n"
        "L3,A,PA,2026-02-01,2026-01-01,100,\n"
        "L4,A,PA,2026-02-01,,100,settled\n"
        "L5,GHOST,,2026-02-01,,100,\n"
        "L6,A,PA,2026-02-01T08:00:00Z,2026-02-03,99.5,settled\n"
    ))
    import_rejecting("claims", claims, [
        (2, "policy 'PA' belongs to another customer"),
        (3, "unknown policy external id 'PZ'"),
        (4, "settled_at is before filed_at"),
        (5, "status settled needs settled_at"),
        (6, "unknown customer external id 'GHOST'"),
    ])
    assert rows(db_url, CLAIM, "external_id", "status", "amount") == [("L6", "settled", 99.5)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("external_id,nme\nC1,x\n", "missing column name; unknown column 'nme' (did you mean 'name'?)"),
        ("", "the file is empty: the first line must name the columns"),
        ("external_id,name,consent_sms_at\n", "column consent_sms_at needs the column consent_sms"),
        ("external_id,name,name\n", "column 'name' appears twice"),
    ],
)
def test_unusable_file_exits_2_and_imports_nothing(db_url: str, tmp_path: Path, content: str, message: str) -> None:
    source = write(tmp_path / "c.csv", content)
    result = run("import", "customers", str(source))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"{source}: {message}; nothing imported"]
    assert count(db_url, CUSTOMER) == 0


def test_file_not_in_the_encoding_is_refused_before_any_row_is_written(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "gbk.csv"
    source.write_bytes("external_id,name\nG1,甲\nG2,乙\n".encode("gbk"))
    result = run("import", "customers", str(source))
    assert result.exit_code == 2 and "not utf-8-sig text" in result.stderr
    assert count(db_url, CUSTOMER) == 0
    assert run("import", "customers", str(source), "--encoding", "gbk").exit_code == 0
    assert rows(db_url, CUSTOMER, "external_id", "name") == [("G1", "甲"), ("G2", "乙")]


def test_id_numbers_need_a_key_and_are_stored_encrypted(db_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    source = write(tmp_path / "c.csv", (
        "external_id,name,id_number\n"
        "I1,孙八,11010519491231002X\n"
        "I2,周九,110105194912310021\n"
    ))
    monkeypatch.delenv("JOURNEYS_DATA_KEY", raising=False)
    result = run("import", "customers", str(source))
    assert result.exit_code == 2 and "JOURNEYS_DATA_KEY is not set" in result.stderr
    assert count(db_url, CUSTOMER) == 0

    key = os.urandom(32)
    monkeypatch.setenv("JOURNEYS_DATA_KEY", base64.b64encode(key).decode())
    result = import_rejecting("customers", source, [(3, "id_number check character is wrong (110***********0021)")])
    assert "11010519491231002X" not in result.output
    stored = rows(db_url, CUSTOMER, "external_id", "id_number_enc")
    assert len(stored) == 1 and isinstance(stored[0][1], bytes)
    assert b"110105" not in stored[0][1]
    assert FieldCipher(key).decrypt(stored[0][1]) == "11010519491231002X"


def test_a_file_that_repeats_the_book_is_reported_unchanged_and_only_changed_rows_are_written(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A nightly file repeats the book: its rows are counted unchanged and not written (their updated_at and
    encrypted ID number stay as stored); a row with one cell changed is the one row updated."""
    monkeypatch.setenv("JOURNEYS_DATA_KEY", base64.b64encode(os.urandom(32)).decode())
    url = migrated_any_db
    header = ("external_id,name,phone,id_number,birthday,timezone,tier,consent_sms,consent_sms_marketing,"
              "preferred_channels,last_active_at,advisor,attr.plan")
    lines = ["U1,孙八,13812345678,11010519491231002X,1980-02-29,Asia/Shanghai,gold,yes,no,sms;wechat,"
             "2026-11-01T09:30:00+08:00,,A",
             "U2,周九,13912345678,,,,silver,no,,email,2026-11-02 10:00,,",
             "U3,Alice,+1 650 253 0000,,1990-07-01,America/Los_Angeles,,,yes,,,,B"]
    source = write(tmp_path / "book.csv", "\n".join([header, *lines]) + "\n")
    assert "imported 3 new, updated 0, unchanged 0, rejected 0" in run("import", "customers",
                                                                        str(source)).stdout
    columns = [c.name for c in CUSTOMER.columns]
    before = {r[1]: r for r in rows(url, CUSTOMER, *columns)}
    again = run("import", "customers", str(source))
    assert "imported 0 new, updated 0, unchanged 3, rejected 0" in again.stdout, again.output
    assert {r[1]: r for r in rows(url, CUSTOMER, *columns)} == before

    lines[1] = lines[1].replace("周九", "周久")
    write(source, "\n".join([header, *lines]) + "\n")
    changed = run("import", "customers", str(source))
    assert "imported 0 new, updated 1, unchanged 2, rejected 0" in changed.stdout, changed.output
    after = {r[1]: r for r in rows(url, CUSTOMER, *columns)}
    assert after["U1"] == before["U1"] and after["U3"] == before["U3"]
    assert after["U2"][columns.index("name")] == "周久"


def test_claims_carry_their_own_product_line(migrated_any_db: str, tmp_path: Path) -> None:
    url = migrated_any_db
    import_clean("customers", tmp_path / "c.csv", "external_id,name\nA,甲\n")
    claims = write(tmp_path / "l.csv", (
        "external_id,customer_external_id,product_line,filed_at,amount\n"
        "L1,A,Health,2026-02-01,100\n"
        "L2,A,,2026-02-01,100\n"
        "L3,A,boat,2026-02-01,100\n"
    ))
    import_rejecting("claims", claims, [
        (4, "product_line 'boat' is not one of motor, health, life, property, accident")])
    assert rows(url, CLAIM, "external_id", "product_line") == [("L1", "health"), ("L2", None)]

    # A file without the column leaves the stored product line alone; an empty cell clears it.
    import_clean("claims", claims, "external_id,customer_external_id,filed_at,amount\nL1,A,2026-02-01,120\n")
    assert rows(url, CLAIM, "external_id", "product_line", "amount")[0] == ("L1", "health", 120.0)
    import_clean("claims", claims,
                 "external_id,customer_external_id,product_line,filed_at,amount\nL1,A,,2026-02-01,120\n")
    assert rows(url, CLAIM, "external_id", "product_line")[0] == ("L1", None)


def test_a_chunk_of_only_bad_claims_without_the_optional_columns_is_reported(db_url: str, tmp_path: Path) -> None:
    import_clean("customers", tmp_path / "c.csv", "external_id,name\nA,甲\n")
    claims = write(tmp_path / "l.csv", "external_id,customer_external_id,filed_at,amount\nL1,GHOST,2026-02-01,100\n")
    import_rejecting("claims", claims, [(2, "unknown customer external id 'GHOST'")])
    assert rows(db_url, CLAIM, "external_id") == []


def test_a_policy_file_without_the_optional_columns_leaves_them_alone(migrated_any_db: str, tmp_path: Path) -> None:
    url = migrated_any_db
    import_clean("customers", tmp_path / "c.csv", "external_id,name\nA,甲\n")
    policies = tmp_path / "p.csv"
    head = "external_id,customer_external_id,product_line,annual_premium,start_date,expiry_date"
    import_clean("policies", policies, f"{head},status,premium_due_date,grace_period_end\n"
                                       "P1,A,motor,1000,2026-01-01,2026-12-31,lapsed,2026-06-30,2026-07-30\n")
    # A nightly file with only the required columns: the premium changes, status and due dates stay.
    import_clean("policies", policies, f"{head}\nP1,A,motor,1100,2026-01-01,2026-12-31\n")
    assert rows(url, POLICY, "annual_premium", "status", "premium_due_date", "grace_period_end") == [
        (1100.0, "lapsed", date(2026, 6, 30), date(2026, 7, 30))]
    # An empty cell in a column the file has clears the date, as for every optional column.
    import_clean("policies", policies, f"{head},premium_due_date\nP1,A,motor,1100,2026-01-01,2026-12-31,\n")
    assert rows(url, POLICY, "premium_due_date", "grace_period_end") == [(None, date(2026, 7, 30))]


def test_a_date_or_time_outside_the_years_taken_is_a_bad_row_not_a_crash(db_url: str, tmp_path: Path) -> None:
    import_clean("customers", tmp_path / "c.csv", "external_id,name\nA,甲\n")
    claims = write(tmp_path / "l.csv", (
        "external_id,customer_external_id,filed_at,amount\n"
        "L1,A,0001-01-01T00:00+01:00,100\n"  # before the first UTC moment: astimezone would overflow
        "L2,A,2026-02-01,100\n"
        "L3,A,0001-01-01,100\n"
        "L4,A,9999-12-31T23:59:59+14:00,100\n"
        "L5,A,1899-12-31T23:59,100\n"
        "L6,A,1900-01-01T08:00,100\n"
        "L7,A,2199-12-31,100\n"
        "L8,A,2200-01-01,100\n"
    ))
    reason = "filed_at '{}' is outside the years 1900–2199"
    import_rejecting("claims", claims, [(2, reason.format("0001-01-01T00:00+01:00")),
                                        (4, reason.format("0001-01-01")),
                                        (5, reason.format("9999-12-31T23:59:59+14:00")),
                                        (6, reason.format("1899-12-31T23:59")),
                                        (9, reason.format("2200-01-01"))])
    assert rows(db_url, CLAIM, "external_id") == [("L2",), ("L6",), ("L7",)]
