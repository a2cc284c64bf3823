"""Submitting changes for review while a template folder does not compile: the author sees each file:line
problem (on the review page, in their language, and from ``journeys review submit``) and nothing is
recorded, not even the other changes submitted with it. Before, the landing passed the folder over
with a line in the log and the page said the submission went through."""

from __future__ import annotations

import pytest
from sqlmodel import func, select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from console import review
from engine.cli import build_app
from store.db import session_scope
from store.models import JourneyVersion
from tests.console.conftest import Seed, login
from tests.console.test_form_errors import set_locale
from tests.console.test_review import offer
from tests.plan_support import Book
from tests.review_support import own_tiers

BROKEN = "Hello {{ customer.name \n"


def recorded(url: str) -> int:
    with session_scope(url) as s:
        return int(s.exec(select(func.count()).select_from(JourneyVersion)).one())


@pytest.fixture
def broken(sqlite_book: Book, seed: Seed) -> Book:
    """The shipped state recorded, then a journey changed and a template broken on line 1."""
    book = sqlite_book
    own_tiers(book.root, book.monkeypatch)
    book.journey("offer", offer("silver"))
    with session_scope(book.url) as s:
        review.submit_changes(s, "olga")  # first start: everything approved as installed
    book.journey("offer", offer("gold"))
    (book.templates / "msg" / "sms.en.j2").write_text(BROKEN, encoding="utf-8")
    return book


def test_the_function_refuses_the_whole_submission_naming_file_and_line(broken: Book) -> None:
    before = recorded(broken.url)
    with session_scope(broken.url) as s, pytest.raises(review.TemplatesDoNotCompile) as refused:
        review.submit_changes(s, "olga")
    [line] = refused.value.problems["msg"]
    assert line.startswith("msg/sms.en.j2:1: ")
    assert recorded(broken.url) == before


@pytest.mark.parametrize(("locale", "words"), [
    ("en", "Nothing was submitted: these template files do not compile."),
    ("zh-CN", "未提交任何内容：以下模板文件无法编译。"),
])
def test_the_page_shows_the_problems_and_records_nothing(client: TestClient, broken: Book, db_url: str,
                                                         locale: str, words: str) -> None:
    set_locale(db_url, "olga", locale)
    token = login(client, "olga")
    before = recorded(broken.url)
    page = client.post("/ops/review/submit", data={"csrf_token": token}, follow_redirects=False)
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert words in page.text
    assert "<code>msg/sms.en.j2:1: " in page.text
    assert recorded(broken.url) == before
    # Fixed, the same button submits the changes.
    (broken.templates / "msg" / "sms.en.j2").write_text("Hello {{ customer.name }}", encoding="utf-8")
    done = client.post("/ops/review/submit", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    assert recorded(broken.url) > before


def test_the_cli_says_which_file_and_line(broken: Book) -> None:
    before = recorded(broken.url)
    result = CliRunner().invoke(build_app(), ["review", "submit", "--as", "olga"])
    assert result.exit_code != 0
    assert "msg/sms.en.j2:1:" in result.output
    assert recorded(broken.url) == before
