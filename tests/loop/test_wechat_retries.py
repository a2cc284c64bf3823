"""WeChat's retries of a pushed message are acted on once, and following the account again grants nothing.

WeChat sends a message again when it got no answer in 5 s (three tries), freshly signed; its
documentation says to recognise a retried message by MsgId, an event by FromUserName + CreateTime.
The stand-in pushes each message twice here, as WeChat's retry would, to our router under uvicorn.
Following the account is no consent under SPEC §6 (consent is recorded per channel and purpose,
with its source): an unfollow withdraws WeChat consent, a later follow leaves it withdrawn.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text

from standins.wechat_api import WeChatStandin, cdata
from store.db import make_engine
from tests.loop.test_receipts import OPENID, make_customer
from tests.loop.test_wechat_security import consent_wechat


def message(created: int, kind: str, **fields: str) -> str:
    body = "".join(f"<{k}>{cdata(v)}</{k}>" for k, v in fields.items())
    return (f"<xml><ToUserName>{cdata('gh_standin00001')}</ToUserName><FromUserName>{cdata(OPENID)}</FromUserName>"
            f"<CreateTime>{created}</CreateTime><MsgType>{cdata(kind)}</MsgType>{body}</xml>")


def counts(db_url: str) -> dict[str, int]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT kind, count(*) FROM outcome GROUP BY kind")).all()
    engine.dispose()
    return {str(kind): int(n) for kind, n in rows}


async def test_retries_act_once_and_a_follow_grants_no_consent(db_url: str, wechat_hooks: str,
                                                              wechat_standin: WeChatStandin) -> None:
    customer = make_customer(db_url)
    now = int(time.time())
    reply = message(now, "text", Content="请问理赔进度", MsgId="24000000001")
    unfollow = message(now + 1, "event", Event="unsubscribe")
    follow = message(now + 2, "event", Event="subscribe")

    async def push_twice(xml: str) -> list[int]:
        standin, hooks = wechat_standin, wechat_hooks
        return [await asyncio.to_thread(standin.run, standin.push(xml, OPENID, hooks)) for _ in range(2)]

    assert await push_twice(reply) == [200, 200]
    assert counts(db_url).get("replied") == 1
    assert await push_twice(unfollow) == [200, 200]
    assert consent_wechat(db_url, customer) is False
    assert counts(db_url).get("opted_out") == 1
    assert await push_twice(follow) == [200, 200]
    assert consent_wechat(db_url, customer) is False
    assert [p["reply"] for p in wechat_standin.callbacks_sent] == ["success"] * 6
    # Each push was signed afresh (a nonce of its own), as a retry from WeChat is.
    assert len({p["query"]["nonce"] for p in wechat_standin.callbacks_sent}) == 6


async def test_a_push_sent_again_as_it_was_is_answered_success_and_acted_on_once(
        db_url: str, wechat_hooks: str, wechat_standin: WeChatStandin) -> None:
    """WeChat's retry of a push whose answer came late may be the same request again, signature and nonce
    included (its documentation says only that it re-initiates the request, and to recognise it by MsgId).
    Refused as a replay (403), it was counted by WeChat as our server failing, which after three tries
    tells the follower the account is out of service; it is answered "success" and not acted on again."""
    customer = make_customer(db_url)
    now = int(time.time())
    standin, hooks = wechat_standin, wechat_hooks
    for xml in (message(now, "text", Content="请问理赔进度", MsgId="24000000009"),
                message(now + 1, "event", Event="unsubscribe")):
        first = await asyncio.to_thread(standin.run, standin.push(xml, OPENID, hooks))
        pushed = standin.callbacks_sent[-1]
        again = [await asyncio.to_thread(standin.run, standin.push_again(pushed)) for _ in range(2)]
        assert [first, *again] == [200, 200, 200]
    assert [p["reply"] for p in standin.callbacks_sent] == ["success"] * 6
    assert counts(db_url).get("replied") == 1 and counts(db_url).get("opted_out") == 1
    assert consent_wechat(db_url, customer) is False
