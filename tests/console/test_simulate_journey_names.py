"""The simulate page names each journey in the reader's language, its id aside, as explain and the report do.
Its day table showed the journey's id alone (``monthly-nps-survey``) on the Chinese page. It gives each day's
touches dropped for want of a channel, as ``journeys simulate`` does: only the total had them."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from engine.language.moments import parse_local_moment
from engine.planning.simulate import simulate
from store.db import session_scope
from store.models import Customer
from tests.console.conftest import Seed, login
from tests.console.test_form_errors import set_locale


def test_the_simulate_page_names_the_journeys_in_words(client: TestClient, seed: Seed, db_url: str) -> None:
    set_locale(db_url, "olga", "zh-CN")
    login(client, "olga")
    page = client.get("/ops/simulate", params={"start": "2026-11-01", "end": "2026-11-01"})
    assert page.status_code == 200
    days = page.text.split('data-testid="simulate-days"', 1)[1].split("</table>", 1)[0]
    assert "月度NPS调查 <small><code>monthly-nps-survey</code></small>" in days


def test_the_simulate_page_gives_each_days_no_channel_drops_as_the_cli_does(client: TestClient, seed: Seed,
                                                                          db_url: str) -> None:
    # A silver customer with no address and no consent: the weekly push (Mondays) finds no channel for them.
    with session_scope(db_url) as s:
        s.add(Customer(external_id="C9", name="赵六", tier="silver", branch="上海分公司", created_at=seed.now,
                       updated_at=seed.now))
    login(client, "olga")
    page = client.get("/ops/simulate", params={"start": "2026-11-01", "end": "2026-11-03"})
    assert page.status_code == 200
    days = simulate(parse_local_moment("2026-11-01"), parse_local_moment("2026-11-04")).to_json()["days"]
    assert sum(d["no_channel_drops"] for d in days) > 0
    shown = re.findall(r'<td data-k="no-channel">(\d+)</td>', page.text)
    assert [int(n) for n in shown] == [d["no_channel_drops"] for d in days]
