"""The programme's time zone (``default_timezone`` in config/delivery.yaml) is a delivery setting like the
others: an edit changes how typed dates are read (the report page's period, ``journeys plan --at``) only
once someone other than the submitter approves it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.language.moments import parse_local_moment
from tests.console.conftest import login
from tests.review_support import approve, config_copy, installed, set_setting, submit


def report_period(client: TestClient) -> str:
    page = client.get("/ops/report?start=2027-03-01&end=2027-03-01")
    assert page.status_code == 200
    found = re.search(r'data-testid="report-period">([^<]*)<', page.text)
    assert found, page.text[:2000]
    return " ".join(found.group(1).split())


def test_an_edited_time_zone_reads_dates_only_once_approved(
        db_url: str, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_copy(tmp_path, monkeypatch)
    installed(db_url)
    login(client, "olga")
    shanghai_day = datetime(2027, 2, 28, 16, tzinfo=UTC)
    assert parse_local_moment("2027-03-01") == shanghai_day
    assert report_period(client).endswith("2027-03-01 · China (Shanghai) Time")  # one whole day

    set_setting(config / "delivery.yaml", "default_timezone", "America/Los_Angeles")
    pending = submit(db_url, "setting:delivery.yaml")
    assert parse_local_moment("2027-03-01") == shanghai_day  # pending: the zone in force still counts
    assert report_period(client).endswith("· China (Shanghai) Time")

    approve(db_url, pending)
    assert parse_local_moment("2027-03-01") == datetime(2027, 3, 1, 8, tzinfo=UTC)
    assert report_period(client).endswith("2027-03-01 · United States (Los Angeles) Time")
    assert parse_local_moment("2027-03-01", "Asia/Shanghai") == shanghai_day  # a zone given is taken as given
