"""The simulate page names each journey in the reader's language, its id aside, as explain and the report do.
Its day table showed the journey's id alone (``monthly-nps-survey``) on the Chinese page."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.console.conftest import Seed, login
from tests.console.test_form_errors import set_locale


def test_the_simulate_page_names_the_journeys_in_words(client: TestClient, seed: Seed, db_url: str) -> None:
    set_locale(db_url, "olga", "zh-CN")
    login(client, "olga")
    page = client.get("/ops/simulate", params={"start": "2026-11-01", "end": "2026-11-01"})
    assert page.status_code == 200
    days = page.text.split('data-testid="simulate-days"', 1)[1].split("</table>", 1)[0]
    assert "月度NPS调查 <small><code>monthly-nps-survey</code></small>" in days
