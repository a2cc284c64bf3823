"""A template file submitted for review that is not UTF-8, larger than the bound every edited file has
(256 KB), or no regular file is a problem at its file and line on the review page, in
``journeys review submit`` and in the landing, as for journey and setting files; nothing is recorded.
Before, reading the folder into one stored text raised UnicodeDecodeError: the page answered 500 and
the landing every 30 s failed with it."""

from __future__ import annotations

import pytest
from sqlmodel import func, select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from console import review
from engine.cli import build_app
from engine.language.template_review import land_templates
from store.db import session_scope
from store.models import JourneyVersion
from tests.console.conftest import Seed, login
from tests.console.test_review import offer
from tests.plan_support import Book

GBK = "您好 {{ customer.name }}\n".encode("gbk")  # saved in the Chinese Windows default, not UTF-8
# (file written into templates/msg/, its bytes, what the problem line starts with)
UNREADABLE = {
    "gbk channel file": ("sms.zh-CN.j2", GBK, "msg/sms.zh-CN.j2:1: not UTF-8 text: byte 0xc4"),
    "gbk file no channel reads": ("notes.txt", b"ok\n" + GBK, "msg/notes.txt:2: not UTF-8 text: byte 0xc4"),
    "gbk meta.yaml": ("meta.yaml", "description: 测试\n".encode("gbk"), "msg/meta.yaml:1: not UTF-8 text"),
    # No channel reads it, so only the bound keeps 300 KB of it out of every stored version.
    "huge file no channel reads": ("notes.txt", b"x" * (300 * 1024), "msg/notes.txt:1: file larger than 256 KB"),
}


def recorded(url: str) -> int:
    with session_scope(url) as s:
        return int(s.exec(select(func.count()).select_from(JourneyVersion)).one())


@pytest.fixture(params=sorted(UNREADABLE))
def unreadable(request: pytest.FixtureRequest, sqlite_book: Book, seed: Seed) -> tuple[Book, str]:
    """The shipped state recorded, then one file of ``msg`` made unreadable; what its problem says."""
    book = sqlite_book
    book.journey("offer", offer("silver"))
    with session_scope(book.url) as s:
        review.submit_changes(s, "olga")  # first start: everything approved as installed
    name, data, says = UNREADABLE[request.param]
    (book.templates / "msg" / name).write_bytes(data)
    return book, says


def test_the_review_page_names_the_file_and_line_and_records_nothing(
        client: TestClient, unreadable: tuple[Book, str]) -> None:
    book, says = unreadable
    token = login(client, "olga")
    before = recorded(book.url)
    page = client.post("/ops/review/submit", data={"csrf_token": token}, follow_redirects=False)
    assert page.status_code == 422, page.text
    assert f"<code>{says}" in page.text
    assert recorded(book.url) == before
    assert client.get("/ops/review").status_code == 200


def test_the_cli_and_the_landing_name_the_file_too(unreadable: tuple[Book, str]) -> None:
    book, says = unreadable
    before = recorded(book.url)
    result = CliRunner().invoke(build_app(), ["review", "submit", "--as", "olga"])
    assert result.exit_code != 0 and says in result.output, result.output
    with session_scope(book.url) as s:
        in_force = land_templates(s, book.templates)  # the 30 s landing: passes the folder over
    assert "template:msg" in in_force
    assert recorded(book.url) == before

