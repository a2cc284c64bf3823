"""A signed webhook whose URL's query holds a control character is answered 400 and stores nothing: a NUL
in Twilio's ``touch_key`` or in WeChat's nonce reached PostgreSQL, which refuses NUL in text (a 500).
(Only the holder of the provider's secret can sign such a URL, but a 500 is never the answer.) Twilio's
ErrorCode is ASCII digits only: int() read "-1" and full-width "３００"."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import func, select

from store.db import session_scope
from store.models import Outcome, Touch, TouchStatus, WebhookNonce
from tests.loop.test_receipts import (
    OPENID,
    client,  # noqa: F401 (fixture)
    make_customer,
    make_touch,
    secrets,  # noqa: F401 (fixture)
    status_callback,
    wechat_query,
    wechat_xml,
)


def count(url: str, model: type[Outcome] | type[WebhookNonce]) -> int:
    with session_scope(url) as s:
        return int(s.exec(select(func.count()).select_from(model)).one())


@pytest.mark.parametrize("key", ["k1%00", "k1%1B", "%7F"])
async def test_twilio_touch_key_with_a_control_character_is_400(db_url: str, client: httpx.AsyncClient,  # noqa: F811
                                                                key: str) -> None:
    touch = make_touch(db_url, make_customer(db_url), "k1")  # no provider id yet: the key would find it
    answer = await status_callback(client, "SMnew1", "delivered", query=f"?touch_key={key}")
    assert answer.status_code == 400 and "control character" in answer.text
    assert count(db_url, Outcome) == 0
    with session_scope(db_url) as s:
        assert s.get(Touch, touch).status == TouchStatus.SENT  # type: ignore[union-attr]
    # The same callback with the key as dispatch writes it is taken.
    assert (await status_callback(client, "SMnew1", "delivered", query="?touch_key=k1")).status_code == 200


@pytest.mark.parametrize("nonce", ["12\x0034", "12\x1b"])
async def test_wechat_nonce_with_a_control_character_is_400(db_url: str, client: httpx.AsyncClient,  # noqa: F811
                                                            nonce: str) -> None:
    make_customer(db_url)
    body = wechat_xml(MsgType="text", FromUserName=OPENID, Content="hello", MsgId="1234567", CreateTime="1")
    answer = await client.post(f"/hooks/wechat?{wechat_query(nonce=nonce)}", content=body)
    assert answer.status_code == 400 and "control character" in answer.text
    assert count(db_url, WebhookNonce) == 0 and count(db_url, Outcome) == 0
    assert (await client.post(f"/hooks/wechat?{wechat_query()}", content=body)).status_code == 200


@pytest.mark.parametrize("code", ["３０００５", "-1", " 30005", "30005\n", "+7"])
async def test_twilio_error_code_is_ascii_digits_only(db_url: str, client: httpx.AsyncClient,  # noqa: F811
                                                      code: str) -> None:
    touch = make_touch(db_url, make_customer(db_url), "k2", provider_message_id="SMcode1")
    answer = await status_callback(client, "SMcode1", "undelivered", error=code)
    assert answer.status_code == 400 and "ErrorCode" in answer.text
    with session_scope(db_url) as s:
        assert s.get(Touch, touch).status == TouchStatus.SENT  # type: ignore[union-attr]
    assert count(db_url, Outcome) == 0
    assert (await status_callback(client, "SMcode1", "undelivered", error="30005")).status_code == 200
