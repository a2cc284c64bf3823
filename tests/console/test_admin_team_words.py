"""The users page names each user's team in the admin's language, as the supervisor's desk does.

A team is a code of config/queues.yaml (``gold_callback``); the page showed it as stored, so a
Chinese admin read ``gold_callback`` beside 坐席 and 中文. A team typed by hand that is no code
stays as typed.
"""

from __future__ import annotations

from starlette.testclient import TestClient

from store.db import session_scope
from store.models import AppUser
from tests.console.conftest import Seed, add_user, login


def team_cell(page: str, username: str) -> str:
    row = page.split(f'data-user="{username}"')[1].split("</tr>")[0]
    return row.split('data-label="团队"')[1].split(">", 1)[1].split("</td>")[0]


def test_the_users_page_names_teams_in_chinese(client: TestClient, db_url: str, seed: Seed) -> None:
    add_user(db_url, "gold1", "gold_callback")
    add_user(db_url, "east1", "华东一组")
    with session_scope(db_url) as s:
        admin = s.get(AppUser, seed.users["adam"])
        assert admin is not None
        admin.locale = "zh-CN"
    login(client, "adam")
    page = client.get("/admin/users").text
    assert team_cell(page, "gold1") == "黄金月度回访"
    assert team_cell(page, "east1") == "华东一组"
    assert team_cell(page, "olga") == ""
