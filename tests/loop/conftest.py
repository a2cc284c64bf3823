"""Fixtures of the closed loop's tests: WeChat's side of the server URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from engine.loop.receipts import create_hooks_router
from standins.wechat_api import WeChatStandin
from tests.standin_support import serving
from tests.uvicorn_support import uvicorn_thread


@pytest.fixture
def wechat_standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[WeChatStandin]:
    """WeChat's stand-in, signing what it pushes with the token the product is given."""
    standin = WeChatStandin(callback_token="hooks-token")
    monkeypatch.setenv("WECHAT_TOKEN", standin.callback_token)
    monkeypatch.delenv("WECHAT_ENCODING_AES_KEY", raising=False)
    monkeypatch.delenv("JOURNEYS_PUBLIC_URL", raising=False)
    yield from serving(standin)


@pytest.fixture
def wechat_hooks(db_url: str) -> Iterator[str]:
    """The product's WeChat server URL, served by uvicorn over ``db_url``."""
    app = FastAPI()
    app.include_router(create_hooks_router(db_url))
    with uvicorn_thread(app) as port:
        yield f"http://127.0.0.1:{port}/hooks/wechat"
