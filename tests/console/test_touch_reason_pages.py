"""Why a touch was not sent, on the pages people read: the journey page's "Dropped" column counts the
touches a delivery rule dropped as well as the cancelled ones, each reason in the reader's language, and an
agent's task page says why each of the customer's recent touches failed or was not sent. Before, the
column counted cancelled touches only and showed the engine's English ("opted out of sms: a marketing
touch is not moved to another channel"), and the task page showed no reason at all.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlmodel import select
from starlette.testclient import TestClient

from channels.routing import reroute_without_consent
from engine.planning.delivery_rules import stored_reason
from store.db import session_scope
from store.models import AppUser, Touch
from store.touch_reasons import ANONYMISED
from tests.console.conftest import Seed, login
from tests.console.test_explain_reasons import LATIN

JOURNEY, STEP = "renewal-reminder", "reminder"
CAP = stored_reason("marketing_cap", "marketing cap 2 per 7d reached")
OPTED_OUT = reroute_without_consent("marketing", "sms", ["email"], lambda c: True, "opted out of sms").reason


def _touches(db_url: str, seed: Seed, rows: list[tuple[str, str | None]]) -> None:
    due = seed.now - timedelta(hours=2)
    with session_scope(db_url) as s:
        for n, (status, reason) in enumerate(rows):
            s.add(Touch(key=f"why:{n}", customer_id=seed.customers["C1"], journey_id=JOURNEY, journey_version="v1",
                        step_id=STEP, occurrence=str(n), category="marketing", channel="sms", template="t",
                        planned_for=due, due_at=due, status=status, error_reason=reason, created_at=due))


def _chinese(db_url: str, username: str) -> None:
    with session_scope(db_url) as s:
        user = s.exec(select(AppUser).where(AppUser.username == username)).one()
        user.locale = "zh-CN"
        s.add(user)


def _not_sent_cell(page: str) -> str:
    row = page.split(f'<tr data-step="{STEP}">', 1)[1].split("</tr>", 1)[0]
    return row.split('data-k="dropped">', 1)[1].split("</td>", 1)[0]


def test_the_journey_page_counts_drops_and_cancels_and_words_them_in_chinese(client: TestClient, db_url: str,
                                                                            seed: Seed) -> None:
    _touches(db_url, seed, [("dropped", CAP)] * 3 + [("cancelled", OPTED_OUT)] * 2 + [("cancelled", ANONYMISED),
                                                                                     ("cancelled", None)])
    _chinese(db_url, "olga")
    login(client, "olga")
    cell = _not_sent_cell(client.get(f"/ops/journeys/{JOURNEY}").text)
    shown = dict(line.rsplit(": ", 1) for line in cell.split("<br>") if line)
    assert shown == {"已达营销上限（每7天2条）": "3", "已退订短信；营销类触达不转到其他渠道": "2",
                     "客户资料已匿名化（超过保存期限）": "1", "已取消": "1"}, cell
    assert not LATIN.search(cell.replace("<br>", "")), cell


def test_past_the_first_reasons_the_rest_are_summed(client: TestClient, db_url: str, seed: Seed) -> None:
    rows: list[tuple[str, str | None]] = [("failed", "x")]
    for n in range(9):
        rows += [("dropped", stored_reason("pre_empted", f"pre-empted by journey-{n}"))] * (n + 1)
    _touches(db_url, seed, rows)
    login(client, "olga")
    cell = _not_sent_cell(client.get(f"/ops/journeys/{JOURNEY}").text)
    lines = [line for line in cell.split("<br>") if line]
    counts = [int(line.rsplit(": ", 1)[1]) for line in lines]
    assert len(lines) == 7 and lines[-1].startswith("Other reasons"), lines
    assert counts == [9, 8, 7, 6, 5, 4, 3 + 2 + 1], lines  # the most common first; failed touches are not here


def test_the_task_page_says_why_each_recent_touch_was_not_sent(client: TestClient, db_url: str, seed: Seed) -> None:
    _touches(db_url, seed, [("dropped", CAP), ("cancelled", OPTED_OUT), ("sent", None)])
    login(client, "bob")  # a Chinese agent with a task on this customer
    page = client.get(f"/tasks/{seed.tasks['bob']}").text
    table = page.split('data-testid="touches"', 1)[1].split("</table>", 1)[0]
    why = re.findall(r'data-k="why">([^<]*)<', table)
    assert sorted(why) == sorted(["已达营销上限（每7天2条）", "已退订短信；营销类触达不转到其他渠道", ""]), why
    assert "原因" in table.split("</thead>", 1)[0]
