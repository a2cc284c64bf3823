"""WeChat's 43004 ("require subscribe") to a template send: the customer does not follow the account.

That is the unfollow whose push we missed (our server URL was down, or the customer unfollowed before
the openid was imported), and it is as lasting: every later template send to them is refused the same
way. So it is recorded as the ``unsubscribe`` push is (``engine.loop.wechat_hooks``): WeChat consent is
withdrawn with the source ``wechat:43004``, and their touches still planned on WeChat move to the next
channel of their lists. Without it WeChat stayed usable for them: the planner chose it first again and
each touch spent a try on WeChat before falling back.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from channels.optout import record_opt_out

NOT_FOLLOWING = "43004"
SOURCE = "wechat:43004"


def record_not_following(engine: Engine, refused: Iterable[tuple[int, str]], at: datetime) -> int:
    """Withdraw WeChat consent of each (customer id, touch key) WeChat answered 43004; how many were
    withdrawn (a customer who has none left to withdraw counts nothing)."""
    withdrawn = 0
    pending = {customer_id: key for customer_id, key in refused}
    if not pending:
        return 0
    with Session(engine) as session:
        for customer_id, key in pending.items():
            done = record_opt_out(session, customer_id, "wechat", source=SOURCE,
                                  dedup_key=f"optout:wechat:43004:{key}"[:255], at=at,
                                  detail={"errcode": int(NOT_FOLLOWING)})
            withdrawn += done is not None
        session.commit()
    return withdrawn
