"""The report by channel names every group in words: the row of agents' tasks (channel ``agent`` in the
engine's figures) was shown as ``agent`` on the Chinese page, the only English word in its table."""

from __future__ import annotations

import re
from datetime import timedelta

from starlette.testclient import TestClient

from console.labels import msgid
from engine.language.moments import parse_local_moment, parse_period_end
from engine.loop.reports import build_report
from store.models import CHANNELS
from tests.console.conftest import Seed, login
from tests.console.ops_seed import seed_activity
from tests.console.test_form_errors import set_locale

GROUP = re.compile(r'<th data-group="([^"]+)">([^<]*)</th>')


def test_every_channel_the_report_groups_by_has_words(client: TestClient, seed: Seed, db_url: str) -> None:
    seed_activity(db_url, list(seed.customers.values()), seed.now)
    first, last = (seed.now - timedelta(days=10)).date(), (seed.now + timedelta(days=1)).date()
    groups = set(build_report(parse_local_moment(first.isoformat()), parse_period_end(last.isoformat()),
                              "channel")["groups"])
    assert "agent" in groups  # the seeded complaint tasks: the group the page had no words for
    assert all(msgid("channel", g) for g in groups | set(CHANNELS) if g != "none")

    set_locale(db_url, "olga", "zh-CN")
    login(client, "olga")
    page = client.get("/ops/report", params={"start": first.isoformat(), "end": last.isoformat(), "by": "channel"})
    assert page.status_code == 200
    shown = dict(GROUP.findall(page.text))
    assert shown["agent"] == "坐席任务"
    assert shown["wechat"] == "微信"
