"""/admin/audit's "all entries" names every action and target in the admin's words: before, only the three
unmasking actions had words, so a Chinese page listed ``setting_version_published``, ``login_failed`` and
``user_skills`` under 操作 and ``setting_version 87`` under 目标."""

from __future__ import annotations

import re

from sqlmodel import select
from starlette.testclient import TestClient

from store.db import session_scope
from store.models import AuditLog
from tests.console.conftest import Seed, csrf_of, login
from tests.console.test_form_errors import set_locale

ROW = re.compile(r'<tr data-action="([^"]+)"[^>]*>\s*<td>[^<]*</td>\s*<td>[^<]*</td>\s*<td>([^<]*)</td>\s*'
                 r'<td>([^<]*)</td>')


def test_every_audited_action_is_in_the_admins_words(client: TestClient, db_url: str, seed: Seed) -> None:
    set_locale(db_url, "adam", "zh-CN")
    token = csrf_of(client.get("/login").text)
    failed = client.post("/login", data={"username": "ann", "password": "wrong-password-1", "csrf_token": token})
    assert failed.status_code == 401  # audited as login_failed
    with session_scope(db_url) as s:
        for action, target in [("journey_version_approved", "journey_version"), ("user_skills", "user"),
                               ("setting_version_published", "setting_version"), ("seed_list_add", "seed_list"),
                               ("policy_upsert", "policy"), ("template_version_rollback", "template_version")]:
            s.add(AuditLog(actor="olga", action=action, target_type=target, target_id="87", detail={}, at=seed.now))
    login(client, "adam")
    page = client.get("/admin/audit", params={"kind": "all"})
    assert page.status_code == 200
    with session_scope(db_url) as s:
        actions = set(s.exec(select(AuditLog.action)).all())
    shown = {action: (words.strip(), target.strip()) for action, words, target in ROW.findall(page.text)}
    assert set(shown) == actions
    for action, (words, target) in shown.items():
        # No code, nor a code written out: a Chinese page reads no Latin letters in these columns.
        assert not re.search(r"[A-Za-z]", words + target), (action, words, target)
    assert shown["setting_version_published"] == ("设置文件: 版本已发布", "设置文件版本 87")
    assert shown["journey_version_approved"] == ("旅程: 版本已批准", "旅程版本 87")
    assert shown["seed_list_add"] == ("加入测试名单", "测试名单")
    assert shown["login_failed"][0] == "登录失败"


def test_a_review_entry_names_its_subject_and_cuts_its_version(client: TestClient, db_url: str, seed: Seed) -> None:
    set_locale(db_url, "adam", "zh-CN")
    version = "c55269660012f77ac15d910505a48e0cc700da9d154e2a98716f7193431fb37e"
    with session_scope(db_url) as s:
        s.add(AuditLog(actor="files", action="setting_version_published", target_type="setting_version",
                       target_id="87", detail={"journey": "setting:tiers.yaml", "version": version, "install": True},
                       at=seed.now))
    login(client, "adam")
    row = client.get("/admin/audit", params={"kind": "all"}).text.split(
        'data-action="setting_version_published"', 1)[1].split("</tr>", 1)[0]
    assert "<td>设置文件版本 87<br>客户等级规则</td>" in row
    assert "<td>版本: c5526966, 启动时发现: 是</td>" in row
    assert "setting:" not in row and version not in row and "True" not in row


def test_a_refusals_reason_and_a_lockouts_end_are_in_words(client: TestClient, db_url: str, seed: Seed) -> None:
    set_locale(db_url, "adam", "zh-CN")
    with session_scope(db_url) as s:
        s.add(AuditLog(actor="ann", action="login_failed", target_type="user", target_id="1",
                       detail={"reason": "password"}, at=seed.now))
        s.add(AuditLog(actor="ann", action="login_lockout", target_type="user", target_id="1",
                       detail={"failures": 5, "until": "2026-11-05T02:15:00+00:00"}, at=seed.now))
        s.add(AuditLog(actor="bob", action="reveal_refused", target_type="task", target_id="3",
                       detail={"reason": "reveal_needs_claim"}, at=seed.now))
    login(client, "adam")
    page = client.get("/admin/audit", params={"kind": "all"}).text

    def detail(action: str) -> str:
        return page.split(f'data-action="{action}"', 1)[1].split("</tr>", 1)[0].rsplit("<td>", 1)[1]

    assert detail("login_failed").startswith("原因: 密码错误</td>")
    assert detail("login_lockout").startswith("失败次数: 5, 截至: 2026/11/5 10:15</td>")
    assert detail("reveal_refused").startswith("原因: 任务未由其领取</td>")


def test_an_export_is_told_in_words_on_the_unmasking_view(client: TestClient, db_url: str, seed: Seed) -> None:
    set_locale(db_url, "adam", "zh-CN")
    with session_scope(db_url) as s:
        for tier in ("gold", None):
            s.add(AuditLog(actor="cli", action="export", target_type="customer", target_id="*",
                           detail={"file": "book.csv", "rows": 3, "unmasked": True, "tier": tier,
                                   "columns": ["external_id", "name"]}, at=seed.now))
    login(client, "adam")
    page = client.get("/admin/audit").text
    rows = [r.split("</tr>", 1)[0] for r in page.split('data-action="export"')[1:]]
    details = sorted(r.rsplit("<td>", 1)[1].split("</td>", 1)[0] for r in rows)
    assert details == ["文件: book.csv, 行数: 3, 明文: 是, 等级: —, 列: external_id/姓名",
                       "文件: book.csv, 行数: 3, 明文: 是, 等级: 黄金, 列: external_id/姓名"]
    assert all("<td>导出</td>" in r for r in rows)
