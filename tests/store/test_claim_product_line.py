"""A claim's own product line, from the import to the planner: the claim's wins, else its policy's,
and a claim with neither still gets the post-claim health offer (it is not known to be a
property claim; ``journeys/README.md``, Conditions)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from engine.planning.planner import plan
from store.bulk_writer import CLAIM
from tests.db_support import rows
from tests.plan_support import Book, utc

ROOT = Path(__file__).resolve().parents[2]
JOURNEY = ROOT / "journeys" / "claim-settled-health-consultation.yaml"


def imported(kind: str, path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["import", kind, str(path)])
    assert result.exit_code == 0, result.output


def test_the_claims_own_product_line_wins_and_an_unknown_one_still_gets_the_offer(
        book: Book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The shipped journey with the shipped templates.
    shutil.copy(JOURNEY, book.journeys / JOURNEY.name)
    monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(ROOT / "templates"))
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "external_id,name,wechat_openid,consent_wechat,tier\n"
        + "".join(f"{c},客户{c},o{c},yes,silver\n" for c in ("NONE", "OWN", "OWNPROP", "POLPROP", "OVERRIDE")),
        encoding="utf-8")
    policies = tmp_path / "policies.csv"
    policies.write_text(
        "external_id,customer_external_id,product_line,annual_premium,start_date,expiry_date\n"
        "P-PROP,POLPROP,property,900,2026-01-01,2026-12-31\n"
        "P-PROP2,OVERRIDE,property,900,2026-01-01,2026-12-31\n",
        encoding="utf-8")
    claims = tmp_path / "claims.csv"
    claims.write_text(
        "external_id,customer_external_id,policy_external_id,product_line,filed_at,settled_at,amount\n"
        "L-NONE,NONE,,,2026-05-01,2026-05-20,3000\n"           # no policy, no product line
        "L-OWN,OWN,,health,2026-05-01,2026-05-20,3000\n"        # no policy, its own line
        "L-OWNPROP,OWNPROP,,property,2026-05-01,2026-05-20,3000\n"
        "L-POLPROP,POLPROP,P-PROP,,2026-05-01,2026-05-20,3000\n"  # the policy's line
        "L-OVERRIDE,OVERRIDE,P-PROP2,motor,2026-05-01,2026-05-20,3000\n",  # its own wins over the policy's
        encoding="utf-8")
    for kind, path in (("customers", customers), ("policies", policies), ("claims", claims)):
        imported(kind, path)
    assert rows(book.url, CLAIM, "external_id", "product_line") == [
        ("L-NONE", None), ("L-OVERRIDE", "motor"), ("L-OWN", "health"), ("L-OWNPROP", "property"),
        ("L-POLPROP", None)]

    # Settled on 20 May: the offer is due 30 days later, 19 June 10:00 Shanghai (02:00 UTC).
    plan(utc(2026, 6, 20), utc(2026, 6, 18), url=book.url)
    offered = {t.occurrence for t in book.touches() if t.journey_id == JOURNEY.stem}
    ids = {str(external_id): claim_id for external_id, claim_id in rows(book.url, CLAIM, "external_id", "id")}
    assert offered == {f"claim-{ids[c]}" for c in ("L-NONE", "L-OWN", "L-OVERRIDE")}
    assert {t.due_at for t in book.touches()} == {utc(2026, 6, 19, 2)}
