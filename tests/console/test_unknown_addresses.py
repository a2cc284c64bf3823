"""An address no page has, or a form's address opened as a page (a bookmark of /logout, a task's claim opened
from the history), answers the console's error page in the reader's language: before, the router's own
refusals came back as FastAPI's bare JSON in English (``{"detail":"Method Not Allowed"}``). The API keeps
its JSON."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.console.conftest import Seed, login


@pytest.mark.parametrize(("path", "status", "heading", "words"), [
    ("/no-such-page", 404, "未找到", "该页面或任务不存在。"),
    ("/tasks/", 404, "未找到", "该页面或任务不存在。"),
    ("/ops/tools/", 404, "未找到", "该页面或任务不存在。"),
    ("/logout", 405, "无法显示此页面", "此地址用于接收表单提交，不能直接打开。"),
    ("/tasks/{task}/claim", 405, "无法显示此页面", "此地址用于接收表单提交，不能直接打开。"),
    ("/admin/users/1/toggle", 405, "无法显示此页面", "此地址用于接收表单提交，不能直接打开。"),
])
def test_a_person_gets_the_error_page_in_their_language(client: TestClient, seed: Seed, path: str, status: int,
                                                        heading: str, words: str) -> None:
    login(client, "bob")  # zh-CN
    answer = client.get(path.format(task=seed.tasks["bob"]), follow_redirects=False)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert f"<h1>{heading}</h1>" in answer.text and words in answer.text
    assert 'href="/"' in answer.text  # a way on
    if status == 405:
        assert "POST" in answer.headers["allow"]


def test_before_logging_in_the_page_follows_the_browser(client: TestClient) -> None:
    answer = client.get("/no-such-page", headers={"Accept-Language": "zh-CN"})
    assert answer.status_code == 404 and "<h1>未找到</h1>" in answer.text


def test_the_api_keeps_its_json(client: TestClient) -> None:
    login(client, "bob")
    for path, status in (("/api/no-such-route", 404), ("/api/events", 405)):
        answer = client.get(path)
        assert answer.status_code == status
        assert answer.headers["content-type"] == "application/json"
        assert isinstance(answer.json()["detail"], str)


def test_a_form_past_its_size_cap_gets_the_page_and_the_api_its_json(client: TestClient, seed: Seed) -> None:
    """A console form larger than its cap (JOURNEYS_MAX_BODY_FORMS) was answered with the API's JSON 413."""
    token = login(client, "bob")
    page = client.post("/me/locale", data={"csrf_token": token, "locale": "en", "back": "/" + "x" * 40_000})
    assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")
    assert "<h1>提交内容过多</h1>" in page.text and "请返回，缩短文字后重新提交。" in page.text
    api = client.post("/api/events", headers={"X-CSRF-Token": token}, content=b"{" + b" " * 100_000 + b"}")
    assert api.status_code in (401, 413) and api.headers["content-type"] == "application/json"
