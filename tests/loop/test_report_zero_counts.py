"""A group with no rows of a kind counts 0 of it; only a rate over nothing has no figure ("—").

A tier whose customers had no touch in the period showed "—" for planned, delivered, tasks and
answers, as if they were unknown, and a tier nobody was in was missing from the report by tier
(the demo's table listed it with zeros). The command's JSON, its table, the demo's rows and the
console's page all come from ``build_report``: they must say the same.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from engine.cli import build_app
from engine.loop.reports import COLUMNS, build_report, fmt, tier_rows
from store.db import session_scope
from store.models import TIERS
from tests.closed_loop_book import END, NOW, START, build

PERIOD = ["--from", "2026-01-01", "--to", "2026-03-31", "--now", "2026-04-01T00:00:00+00:00"]
COUNTS = ("planned", "delivered", "failed", "tasks", "sla_judged", "sla_met", "fcr_cases", "nps_answers",
          "csat_answers", "complaints", "negative_callbacks", "acted_on", "reached")


def test_a_group_without_rows_counts_zero_and_has_no_rate(db_url: str) -> None:
    with session_scope(db_url) as session:
        build(session)
    by_tier = build_report(START, END, "tier", now=NOW, url=db_url)
    groups = by_tier["groups"]
    # C6 (untiered) had no touch, task or answer in the quarter; nobody was diamond or potential on 1 January.
    assert list(groups) == [*TIERS, "none"]
    for tier in ("none", "diamond", "potential"):
        assert {k: groups[tier][k] for k in COUNTS} == dict.fromkeys(COUNTS, 0), tier
        assert (groups[tier]["reach_rate"], groups[tier]["sla_compliance"], groups[tier]["nps"]) == (None, None, None)
    assert (groups["none"]["customers"], groups["diamond"]["customers"]) == (1, 0)

    by_channel = build_report(START, END, "channel", now=NOW, url=db_url)["groups"]
    # Agents' tasks are no touches, and no task is an SMS; customer-level figures have no channel at all.
    assert (by_channel["agent"]["planned"], by_channel["agent"]["reach_rate"]) == (0, None)
    assert (by_channel["sms"]["tasks"], by_channel["sms"]["sla_compliance"]) == (0, None)
    assert by_channel["sms"]["customers"] is None

    runner = CliRunner()
    result = runner.invoke(build_app(), ["report", *PERIOD, "--by", "tier", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["groups"] == json.loads(json.dumps(groups))
    # The demo's summary rows (summary.json) are the same figures.
    assert {row["tier"]: row["planned"] for row in tier_rows(groups)} == {t: v["planned"] for t, v in groups.items()}

    table = runner.invoke(build_app(), ["report", *PERIOD, "--by", "tier"], env={"COLUMNS": "400"})
    assert table.exit_code == 0, table.output
    row = next(line for line in table.output.splitlines() if line.strip("│ ").startswith("none"))
    cells = [cell.strip() for cell in row.strip().strip("│").split("│")]
    shown = dict(zip(["tier", *(key for key, _h, _k in COLUMNS)], cells, strict=True))
    assert shown["planned"] == "0"
    assert shown["reach_rate"] == "—"
    for key, _heading, kind in COLUMNS:
        assert shown[key] == fmt(groups["none"][key], kind), key
