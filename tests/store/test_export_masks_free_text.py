"""A masked ``journeys export customers`` shows no phone, e-mail, ID number or openid whole (SPEC §9), in
the personal columns and in the text the source system chose: a consent's source ("form by 13812345678"),
the branch, the external id. Those were written as stored, so a masked export carried a number in full."""

from __future__ import annotations

import csv
from pathlib import Path

from store.export import export_customers
from tests.store.test_import import import_clean

PHONE, EMAIL, OPENID = "13812345678", "wang.wei@example.com", "o6_bmjrptiirnnr7zcadq2a9jrvg"


def test_a_masked_export_masks_contact_details_in_every_text_column(db_url: str, tmp_path: Path) -> None:
    import_clean("customers", tmp_path / "customers.csv",
                 "external_id,name,phone,email,wechat_openid,branch,consent_sms,consent_sms_source,"
                 "consent_email,consent_email_source\n"
                 f"C-{PHONE},王伟,{PHONE},{EMAIL},{OPENID},上海 {PHONE},yes,form by {PHONE},yes,{EMAIL}\n")
    out = tmp_path / "export.csv"
    export_customers(db_url, out)
    text = out.read_text(encoding="utf-8")
    assert PHONE not in text and EMAIL not in text and OPENID[4:-4] not in text
    [row] = list(csv.DictReader(text.splitlines()))
    assert (row["external_id"], row["branch"]) == ("C-138****5678", "上海 138****5678")
    assert (row["consent_sms_source"], row["consent_email_source"]) == ("form by 138****5678", "w***@example.com")
