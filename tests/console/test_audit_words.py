"""/admin/audit shows a detail's keys and field names in the admin's language: before, a Chinese page read
"task_id=16, fields=name/phone/email"."""

from __future__ import annotations

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from store.db import session_scope
from store.models import AppUser, AuditLog
from tests.console.conftest import Seed, login


@pytest.mark.parametrize(("locale", "expected"), [
    ("zh-CN", "任务: 7, 查看的字段: 姓名/电话/邮件"),
    ("en", "Task: 7, Fields shown: Name/Phone/Email"),
])
def test_a_reveal_detail_is_in_the_admins_words(client: TestClient, db_url: str, seed: Seed, locale: str,
                                                expected: str) -> None:
    with session_scope(db_url) as s:
        adam = s.exec(select(AppUser).where(AppUser.username == "adam")).one()
        adam.locale = locale
        s.add(adam)
        s.add(AuditLog(actor="ann", action="reveal", target_type="customer", target_id="3",
                       detail={"task_id": 7, "fields": ["name", "phone", "email"]}, at=seed.now))
    login(client, "adam")
    page = client.get("/admin/audit").text
    assert f"<td>{expected}</td>" in page
    assert "task_id" not in page and "fields=" not in page
