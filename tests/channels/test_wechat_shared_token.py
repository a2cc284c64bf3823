"""The WeChat access token is one for every process of the account, kept in the store.

WeChat invalidates a token five minutes after the next fetch and counts fetches per day, so
processes that each fetch their own take turns breaking each other's sends. Each adapter here
stands for one process (its own token cache), built as the dispatcher builds it
(``channels.registry.wechat_from_env``); the stand-in's grace period is 0 so that a second
fetch breaks the first token at once, as it would five minutes later in production.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from contextlib import aclosing

import pytest
from sqlmodel import select

from channels.registry import wechat_from_env
from standins.wechat_api import WeChatStandin
from store.db import session_scope
from store.models import KeyValue
from tests.channels.test_channel_wechat import wx
from tests.standin_support import serving


@pytest.fixture
def standin() -> Iterator[WeChatStandin]:
    yield from serving(WeChatStandin(token_grace_s=0))


def _env(standin: WeChatStandin) -> dict[str, str]:
    return {"WECHAT_APPID": standin.appid, "WECHAT_SECRET": standin.secret, "WECHAT_API_BASE": standin.base_url,
            "CHANNEL_TIMEOUT": "5"}


async def test_processes_share_one_token_through_the_store(migrated_any_db: str, standin: WeChatStandin) -> None:
    async with aclosing(wechat_from_env(_env(standin))) as first, aclosing(wechat_from_env(_env(standin))) as second:
        assert (await first.send_one(wx(1))).ok
        assert (await second.send_one(wx(2))).ok
        assert (await first.send_one(wx(3))).ok
    # One fetch for both processes; with a token each, the second's fetch broke the first's
    # (40001/42001 on its next send) and the first fetched again: three fetches.
    assert standin.counts["token"] == 1
    assert standin.counts["errcode:40001"] + standin.counts["errcode:42001"] == 0
    assert len(standin.log) == 3


async def test_a_token_refused_in_several_processes_is_fetched_again_once(
    migrated_any_db: str, standin: WeChatStandin
) -> None:
    adapters = [wechat_from_env(_env(standin)) for _ in range(3)]
    try:
        for i, adapter in enumerate(adapters):
            assert (await adapter.send_one(wx(i))).ok
        standin.revoke_tokens()
        results = await asyncio.gather(*(adapter.send_one(wx(10 + i)) for i, adapter in enumerate(adapters)))
    finally:
        for adapter in adapters:
            await adapter.aclose()
    assert all(r.ok for r in results)
    # The first fetch, and one more after the revocation however many processes were refused.
    assert standin.counts["token"] == 2


async def test_the_stored_token_is_encrypted_with_the_data_key(
    migrated_any_db: str, standin: WeChatStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYS_DATA_KEY", base64.b64encode(os.urandom(32)).decode())
    async with aclosing(wechat_from_env(_env(standin))) as adapter:
        assert (await adapter.send_one(wx(1))).ok
        token = await adapter.tokens.get()
    with session_scope(migrated_any_db) as session:
        rows = session.exec(select(KeyValue).where(KeyValue.key == f"wechat:access_token:{standin.appid}")).all()
        assert len(rows) == 1
        assert token not in str(rows[0].value)
