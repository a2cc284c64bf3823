"""The access log of a served webhook app names no customer: WeChat puts the sender's openid in the
query of every push to our server URL, and uvicorn writes the request line as it was sent.

Real uvicorn on loopback, the webhook router, a push signed as WeChat signs it (plain mode), the record
factory the console installs (``store.masking.install_masking_everywhere``)."""

from __future__ import annotations

import io
import logging
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from engine.loop.receipts import create_hooks_router
from store.masking import install_masking_everywhere, mask_openid, mask_text
from tests.loop.test_receipts import WECHAT_TOKEN, make_customer, wechat_query, wechat_xml
from tests.uvicorn_support import uvicorn_thread

OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"


@pytest.fixture
def masked_records() -> Iterator[None]:
    previous = logging.getLogRecordFactory()
    install_masking_everywhere()
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)


def test_a_wechat_push_is_logged_without_its_openid(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                                    masked_records: None) -> None:
    monkeypatch.setenv("WECHAT_TOKEN", WECHAT_TOKEN)
    monkeypatch.delenv("WECHAT_ENCODING_AES_KEY", raising=False)
    make_customer(db_url, openid=OPENID)
    app = FastAPI()
    app.include_router(create_hooks_router(db_url))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    access = logging.getLogger("uvicorn.access")
    with uvicorn_thread(app) as port:
        level = access.level
        access.setLevel(logging.INFO)  # uvicorn_thread serves at warning; the access line is info
        access.addHandler(handler)
        try:
            body = wechat_xml(FromUserName=OPENID, CreateTime="1764000000", MsgType="text", Content="你好",
                              MsgId="6100000000000000077")
            query = wechat_query(openid=OPENID)
            response = httpx.post(f"http://127.0.0.1:{port}/hooks/wechat?{query}", content=body)
        finally:
            access.removeHandler(handler)
            access.setLevel(level)
    assert (response.status_code, response.text) == (200, "success")
    line = stream.getvalue()
    assert "POST /hooks/wechat?" in line and " 200" in line
    assert OPENID not in line and OPENID[4:20] not in line
    assert f"openid={mask_openid(OPENID)}" in line


@pytest.mark.parametrize("value", ["oAbCdEfGhIjKlMnOpQrStUvWxYz1", "o13812345678AbCdEfGhIjKlMnOp", "abcdefgh"])
def test_an_openid_in_a_query_is_masked_to_less_than_half(value: str) -> None:
    masked = mask_text(f"/hooks/wechat?nonce=1&openid={value}&x=1 and ?UnionId={value}")
    assert value not in masked
    shown = mask_openid(value).replace("*", "")
    assert len(shown) < len(value) / 2
    assert masked == f"/hooks/wechat?nonce=1&openid={mask_openid(value)}&x=1 and ?UnionId={mask_openid(value)}"
    # The query's other values are left as they are.
    assert mask_text(urllib.parse.urlencode({"nonce": "123456", "timestamp": "1796423800"})) == (
        "nonce=123456&timestamp=1796423800")
