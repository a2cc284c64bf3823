"""The console's report page shows a group's count of nothing as 0, and its rate over nothing as "—",
as the CLI's table does (both format ``build_report``'s figures with ``reports.fmt``)."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from engine.language.moments import parse_local_moment
from engine.loop.reports import COLUMNS, build_report, fmt
from store.models import TIERS
from tests.console.conftest import login

ROW = re.compile(r'<tr><th data-group="([^"]+)">.*?</tr>', re.S)
CELL = re.compile(r'<td data-metric="([^"]+)"[^>]*>([^<]*)</td>')


def test_every_tier_row_shows_the_reports_figures(client: TestClient) -> None:
    login(client, "olga")
    # A month before the seeded book's activity: customers, no touches.
    params = {"start": "2020-01-01", "end": "2020-01-31", "by": "tier"}
    page = client.get("/ops/report", params=params)
    assert page.status_code == 200
    report = build_report(parse_local_moment("2020-01-01"), parse_local_moment("2020-02-01"), "tier")
    kinds = {key: kind for key, _heading, kind in COLUMNS}
    rows = {m.group(1): dict(CELL.findall(m.group(0))) for m in ROW.finditer(page.text)}
    assert set(TIERS) <= set(rows) == set(report["groups"])
    for group, cells in rows.items():
        assert cells["planned"].strip() == "0", group
        assert cells["reach_rate"].strip() == "—", group
        for key, text in cells.items():
            shown = text.replace("✔", "").replace("✘", "").strip()
            assert shown == fmt(report["groups"][group][key], kinds[key]), (group, key)
