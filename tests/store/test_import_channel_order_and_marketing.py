"""``journeys import customers``: a channel named twice in ``preferred_channels`` is a bad row (which of
its places was meant is not the import's to guess), and a marketing consent can say ``channel``:
not given apart, the channel's own consent covers it (what an export writes for such a customer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.bulk_writer import CUSTOMER
from store.importing import fields as f
from tests.db_support import rows
from tests.store.test_import import import_clean, import_rejecting, write


@pytest.mark.parametrize("cell", ["sms;sms;email", "sms,email,SMS", "wechat | wechat", "email email"])
def test_a_channel_named_twice_is_a_bad_row_reported_at_its_line(db_url: str, tmp_path: Path, cell: str) -> None:
    source = write(tmp_path / "customers.csv", (
        "external_id,name,preferred_channels\n"
        "C1,Ann,sms;email\n"
        f'C2,Bob,"{cell}"\n'
        "C3,Cat,wechat;sms;email;push\n"
    ))
    channel = cell.split(";")[0].split(",")[0].split()[0].lower()
    import_rejecting("customers", source, [
        (3, f"preferred_channels names {channel} more than once (each channel has one place in the order)"),
    ])
    assert rows(db_url, CUSTOMER, "external_id", "preferred_channels") == [
        ("C1", ["sms", "email"]), ("C3", ["wechat", "sms", "email", "push"])]


def test_the_rule_is_shared_with_whoever_takes_a_list_of_channels() -> None:
    assert f.channel_order_problem(["sms", "email"]) is None
    assert f.channel_order_problem(["email", "sms", "email", "sms"]) == (
        "preferred_channels names email, sms more than once (each channel has one place in the order)")


def test_a_marketing_consent_not_given_apart_is_written_channel(db_url: str, tmp_path: Path) -> None:
    header = "external_id,name,consent_sms,consent_sms_marketing,consent_sms_marketing_source\n"
    import_clean("customers", tmp_path / "a.csv", header + "C1,Ann,yes,channel,\nC2,Bob,yes,,\nC3,Cy,yes,no,app\n")
    assert rows(db_url, CUSTOMER, "external_id", "consent_sms_marketing", "consent_sms_marketing_source") == [
        ("C1", None, None), ("C2", False, None), ("C3", False, "app")]
    # A withdrawn marketing consent set back to "channel" is a change, recorded as one.
    import_clean("customers", tmp_path / "b.csv", header + "C3,Cy,yes,Channel,\n")
    assert rows(db_url, CUSTOMER, "external_id", "consent_sms_marketing", "consent_sms_marketing_source")[2] == (
        "C3", None, "import")
    import_rejecting("customers", write(tmp_path / "c.csv", header + "C4,Di,channel,channel,\n"), [
        (2, "consent_sms 'channel' is not a consent value (yes/no, true/false, 1/0, 是/否)")])
