"""What is wrong with an ops tool's form (explain, simulate, report, a journey's period) is said in the reader's
language: a Chinese page words the field and the fault in Chinese, never the English message; an English page
keeps the English wording; what the person typed is shown as typed, escaped."""

from __future__ import annotations

import html

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from console.i18n import catalog_messages
from store.db import session_scope
from store.models import AppUser
from tests.console.conftest import login

# (address, parameters, words on the Chinese page, the English page's message)
CASES: list[tuple[str, dict[str, str], str, str]] = [
    ("/ops/simulate", {"start": "2026-12-05", "end": "2026-12-01"}, "截止：必须晚于起始", "end: must be after start"),
    ("/ops/simulate", {"start": "2026-01-01", "end": "2026-12-01"}, "截止：时间段最长 92 天",
     "end: a period of at most 92 days"),
    ("/ops/simulate", {"start": "2" * 100, "end": "2026-12-01"}, "起始：最多 64 个字符",
     "start: at most 64 characters"),
    ("/ops/simulate", {"start": "0001-01-01", "end": "0001-01-02"}, "起始：“0001-01-01”超出 1900–2199 年的范围",
     "start: '0001-01-01' is outside the years 1900–2199"),
    ("/ops/simulate", {"start": "2026-12-01"}, "截止：必填", "end: required"),
    ("/ops/explain", {"customer": "NOPE", "at": "2026-12-01"}, "客户编号：没有外部编号为“NOPE”的客户",
     "customer: no customer with external id 'NOPE'"),
    ("/ops/explain", {"customer": "C1", "at": "xx"}, "时间：“xx”不是 ISO 8601 格式的日期或时间",
     "at: 'xx' is not an ISO 8601 date or time"),
    ("/ops/explain", {"customer": "", "at": "2026-12-01"}, "客户编号：必填", "customer: required"),
    ("/ops/report", {"start": "2026-11-01", "end": "2026-12-01", "by": "zz"},
     "分组：只能是等级、旅程、渠道、分支机构之一", "by: one of tier, journey, channel, branch"),
    ("/ops/report", {"start": "", "end": ""}, "起始：必填", "start: required"),
    ("/ops/report", {"start": "2024-01-01", "end": "2026-12-01"}, "截止：时间段最长 366 天",
     "end: a period of at most 366 days"),
    ("/ops/journeys/complaint-response", {"start": "2026-12-01", "end": "2026-11-01"}, "截止：必须晚于起始",
     "end: must be after start"),
    ("/ops/journeys/complaint-response", {"start": "", "end": "2026-11-01"}, "起始：必填", "start: required"),
    ("/ops/journeys/complaint-response", {"start": "yesterday", "end": "2026-11-01"},
     "起始：“yesterday”不是 ISO 8601 格式的日期或时间", "start: 'yesterday' is not an ISO 8601 date or time"),
]


def _as(client: TestClient, db_url: str, locale: str) -> None:
    with session_scope(db_url) as s:
        olga = s.exec(select(AppUser).where(AppUser.username == "olga")).one()
        olga.locale = locale
        s.add(olga)
    login(client, "olga")


def _error(page_text: str) -> str:
    """The form error shown beside the form."""
    return page_text.split('data-testid="tool-error">', 1)[1].split("</p>", 1)[0]


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize(("path", "params", "zh", "en"), CASES)
def test_a_form_error_is_in_the_reader_s_language(client: TestClient, db_url: str, path: str,
                                                   params: dict[str, str], zh: str, en: str, locale: str) -> None:
    """In Chinese with none of the English words left; in English as before."""
    _as(client, db_url, locale)
    page = client.get(path, params=params)
    assert page.status_code == 200
    shown = html.unescape(_error(page.text))
    if locale == "en":
        assert en in shown, shown
        return
    assert zh in shown, shown
    assert en not in shown and en.split(":")[0] + ":" not in shown, shown


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_what_was_typed_is_shown_as_typed_and_escaped(client: TestClient, db_url: str, locale: str) -> None:
    _as(client, db_url, locale)
    typed = "<i>NO%(x)sPE</i>"
    page = client.get("/ops/explain", params={"customer": typed, "at": "2026-12-01"})
    assert page.status_code == 200
    shown = _error(page.text)
    assert html.escape(typed, quote=False) in shown and "<i>" not in shown


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_every_ops_form_message_and_field_word_is_in_the_catalogue(locale: str) -> None:
    from console.routes_ops import FIELD_WORDS, MESSAGES

    catalogue = catalog_messages(locale)
    missing = [m for m in [*MESSAGES.values(), *FIELD_WORDS.values()] if not catalogue.get(m)]
    assert not missing
