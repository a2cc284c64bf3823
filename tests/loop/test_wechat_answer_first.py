"""WeChat gets its answer before the planner's work on what it pushed.

WeChat waits 5 s for the server URL's answer; without one it sends the message again (three times
in all) and then tells the follower the account cannot serve them. So the route commits what a
message asks (the opt-out here), answers "success", and only then acts on the events it stored.
Shown by order, not by time: the work after the answer is held until the stand-in has its answer.
"""

from __future__ import annotations

import asyncio
import threading

from channels.optout import StoredEvent, event_listeners
from standins.wechat_api import WeChatStandin
from store.db import session_scope
from store.models import Customer
from tests.loop.test_receipts import OPENID, make_customer


async def test_wechat_is_answered_before_the_events_are_acted_on(db_url: str, wechat_hooks: str,
                                                                wechat_standin: WeChatStandin) -> None:
    customer = make_customer(db_url)
    order: list[str] = []
    answered, acted = threading.Event(), threading.Event()
    committed: list[bool] = []

    def slow_planner(event: StoredEvent) -> None:
        # Stands for a planner run that outlasts WeChat's patience: it cannot end before the answer is out
        # (the wait is bounded so that, answered after it, the test fails rather than hangs).
        answered.wait(10)
        with session_scope(db_url) as session:
            row = session.get(Customer, customer)
            committed.append(row is not None and row.consent_wechat_marketing is False)
        order.append("acted")
        acted.set()

    event_listeners.append(slow_planner)
    try:
        status = await asyncio.to_thread(wechat_standin.run, wechat_standin.inject_text(OPENID, "TD", wechat_hooks))
        order.append("answered")
        answered.set()
        assert await asyncio.to_thread(acted.wait, 30)
    finally:
        event_listeners.remove(slow_planner)

    assert status == 200 and wechat_standin.callbacks_sent[-1]["reply"] == "success"
    assert order == ["answered", "acted"]
    # The opt-out itself was committed before the answer; only acting on its event came after.
    assert committed == [True]
