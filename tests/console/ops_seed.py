"""Journey activity for the ops pages' tests and screenshots: enrollments, touches, replies, tasks and exits.

``gold-value-added-services`` gets a split whose ``wechat_first`` variant plainly out-replies
``email_first`` (so the page has a verdict to show), ``complaint-response`` gets tasks and a
goal-less spread of exits, and ``birthday-care`` a few touches dropped by a rule, written as the planner
writes them (status ``dropped``, the rule's stored reason): a touch withdrawn on purpose is ``cancelled``
and does not count as planned, a dropped one does.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from engine.planning.delivery_rules import DROP_NO_CHANNEL, stored_reason
from store.db import session_scope
from store.models import AgentTask, Enrollment, Outcome, Touch, TouchStatus

SPLIT_JOURNEY = "gold-value-added-services"
# variant → (enrollments, share that reply)
SPLIT_PLAN = {"wechat_first": (160, 0.35), "email_first": (160, 0.12), "holdout": (36, 0.0)}
SEND_STEP = {"wechat_first": "send_wechat_first", "email_first": "send_email_first"}
# birthday-care is a service journey, which no cap drops: the planner drops it when no channel is left.
NO_CHANNEL = ("no consented, reachable channel among sms", "no consented, reachable channel among sms, wechat")
DROPPED_BIRTHDAYS = 5


def seed_activity(url: str, customer_ids: list[int], now: datetime, *, scale: int = 1) -> None:
    """Write the activity; ``scale`` multiplies the split's enrollments (the benchmark's bigger book)."""
    rng = random.Random(7)
    n = 0
    with session_scope(url) as s:
        for variant, (count, reply_share) in SPLIT_PLAN.items():
            for i in range(count * scale):
                n += 1
                customer = customer_ids[n % len(customer_ids)]
                entered = now - timedelta(hours=2 + (n % 90))
                holdout = variant == "holdout"
                e = Enrollment(customer_id=customer, journey_id=SPLIT_JOURNEY, journey_version="v1",
                               occurrence=f"o{n}", step_id="channel_test" if holdout else "done",
                               state="exited" if holdout or i % 5 else "waiting", split_branch=variant,
                               entered_at=entered, exited_at=entered if holdout or i % 5 else None,
                               exit_reason="holdout" if holdout else ("sent" if i % 5 else None))
                s.add(e)
                s.flush()
                if holdout:
                    continue
                failed = i % 23 == 0
                # As the planner writes them: matched to the enrollment by customer, journey and occurrence.
                touch = Touch(key=f"ops:{n}", customer_id=customer, journey_id=SPLIT_JOURNEY,
                              journey_version="v1", step_id=SEND_STEP[variant], occurrence=e.occurrence,
                              category="marketing", channel="wechat" if variant == "wechat_first" else "email",
                              template="gold_value_added", split_branch=variant, planned_for=entered,
                              due_at=entered, status="failed" if failed else "delivered", created_at=entered,
                              sent_at=entered, delivered_at=None if failed else entered,
                              error_reason="invalid address" if failed else None)
                s.add(touch)
                s.flush()
                if not failed and rng.random() < reply_share:
                    s.add(Outcome(touch_id=touch.id, customer_id=customer, channel=touch.channel, kind="replied",
                                  occurred_at=entered + timedelta(minutes=30)))
        for i in range(12):
            n += 1
            customer = customer_ids[n % len(customer_ids)]
            at = now - timedelta(days=i % 6, hours=3)
            e = Enrollment(customer_id=customer, journey_id="complaint-response", journey_version="v1",
                           occurrence=f"c{n}", step_id=("wait_resolved", "resolved", "unresolved")[i % 3],
                           state="waiting" if i % 3 == 0 else "exited", entered_at=at,
                           exited_at=None if i % 3 == 0 else at + timedelta(hours=2),
                           exit_reason=(None, "resolved", "unresolved")[i % 3])
            s.add(e)
            s.flush()
            s.add(Touch(key=f"ops:{n}", customer_id=customer, enrollment_id=e.id, journey_id="complaint-response",
                        journey_version="v1", step_id="acknowledge", occurrence=e.occurrence, category="service",
                        channel="sms", template="complaint_received", planned_for=at, due_at=at,
                        status="delivered", created_at=at, sent_at=at, delivered_at=at))
            s.add(AgentTask(key=f"ops:{n}", customer_id=customer, enrollment_id=e.id, journey_id="complaint-response",
                            journey_version="v1", step_id="handle", occurrence=e.occurrence, queue="complaints",
                            priority=1, due_at=at + timedelta(hours=24), created_at=at,
                            status="done" if i % 2 else "open",
                            completed_at=at + timedelta(hours=5) if i % 2 else None,
                            outcome_code="resolved" if i % 2 else None))
        for i in range(DROPPED_BIRTHDAYS):
            n += 1
            at = now - timedelta(days=1, hours=i)
            s.add(Touch(key=f"ops:{n}", customer_id=customer_ids[i % len(customer_ids)], journey_id="birthday-care",
                        journey_version="v1", step_id="greeting", occurrence=f"b{n}", category="service",
                        channel="sms", template="birthday_greeting", planned_for=at, due_at=at,
                        status=TouchStatus.DROPPED, error_reason=stored_reason(DROP_NO_CHANNEL, NO_CHANNEL[i % 2]),
                        created_at=at))


def count_by(session: Session, table: sa.Table, column: str, *where: Any) -> dict[Any, int]:
    """Rows of ``table`` meeting ``where``, counted per value of ``column``: the figures the pages must show."""
    key = table.c[column]
    return {k: n for k, n in session.execute(sa.select(key, sa.func.count()).where(*where).group_by(key)).all()}
