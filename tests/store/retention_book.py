"""The retention purge's book: customers past their retention period and ones kept for a reason,
each with every kind of row that holds personal data or feeds an aggregate (touches, outcomes,
tasks, survey answers, events, tier history), so the purge tests can check what is wiped and
what every figure keeps."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta

from sqlmodel import Session

from store.crypto import FieldCipher
from store.db import make_engine
from store.models import AgentTask, Customer, Enrollment, Event, Outcome, Policy, SurveyAnswer, TierChange, Touch


def build(url: str, now: datetime) -> dict[str, list[int]]:
    """30 customers, 10 per kind: 'old' (past retention), 'policy' (old but a policy in force),
    'recent' (old but an event last month). Each has touches, outcomes, a task, a survey answer,
    an event with free text and a tier history, all four years ago; 'old' ones have a planned touch too."""
    long_ago = now - timedelta(days=4 * 365)
    tiers = ("diamond", "platinum", "gold", "silver", "potential")
    groups: dict[str, list[int]] = {"old": [], "policy": [], "recent": []}
    engine = make_engine(url)
    with Session(engine) as session:
        for i in range(30):
            kind = ("old", "policy", "recent")[i % 3]
            customer = Customer(
                external_id=f"R-{i:03d}", name=f"李{i}", phone=f"+8613900{i:06d}", email=f"r{i}@example.com",
                wechat_openid=f"oOPENID{i:04d}", id_number_enc=FieldCipher(os.urandom(32)).encrypt("X"),
                birthday=date(1970, 1, 1 + i % 28), birth_md=100 + 1 + i % 28, tier=tiers[i % 5],
                branch=("sh", "bj")[i % 2], consent_sms=True, consent_sms_source="form", consent_sms_at=long_ago,
                attributes={"annual_premium": 1000}, last_active_at=long_ago,
                created_at=now - timedelta(days=6 * 365), updated_at=long_ago,
            )
            session.add(customer)
            session.flush()
            cid = customer.id
            assert cid is not None
            groups[kind].append(cid)
            session.add(TierChange(customer_id=cid, from_tier=None, to_tier=tiers[i % 5], score=50.0,
                                   changed_at=now - timedelta(days=5 * 365)))
            session.add(Policy(external_id=f"P-{i}", customer_id=cid, product_line="health", annual_premium=900,
                               start_date=(long_ago - timedelta(days=365)).date(),
                               expiry_date=(now + timedelta(days=100)).date() if kind == "policy" else long_ago.date(),
                               status="active" if kind == "policy" else "lapsed"))
            for j, journey in enumerate(("j-a", "j-b")):
                touch = Touch(key=f"{cid}:{journey}:s1:o", customer_id=cid, journey_id=journey, journey_version="v",
                              step_id="s1", occurrence="o", category="service", channel="sms", template="t",
                              planned_for=long_ago, due_at=long_ago, status="delivered", attempts=1,
                              created_at=long_ago, sent_at=long_ago, delivered_at=long_ago + timedelta(minutes=j))
                session.add(touch)
                session.flush()
                session.add(Outcome(dedup_key=f"d:{touch.id}", touch_id=touch.id, customer_id=cid, channel="sms",
                                    kind="delivered", occurred_at=long_ago))
                session.add(Outcome(dedup_key=f"r:{touch.id}", touch_id=touch.id, customer_id=cid, channel="sms",
                                    kind="replied", detail={"message_id": "m"}, occurred_at=long_ago))
            if kind == "old":
                session.add(Touch(key=f"{cid}:j-a:s2:next", customer_id=cid, journey_id="j-a", journey_version="v",
                                  step_id="s2", occurrence="next", category="marketing", channel="sms", template="t",
                                  planned_for=now + timedelta(days=3), due_at=now + timedelta(days=3),
                                  created_at=long_ago))
                session.add(Enrollment(customer_id=cid, journey_id="j-a", journey_version="v", occurrence="next",
                                       state="waiting", entered_at=long_ago))
            session.add(AgentTask(key=f"task:{cid}", customer_id=cid, journey_id="j-b", journey_version="v",
                                  step_id="call", occurrence="o", queue="callback", status="done", due_at=long_ago,
                                  created_at=long_ago, completed_at=long_ago, outcome_code="reached",
                                  notes=f"客户手机 +8613900{i:06d}，想改地址"))
            session.add(SurveyAnswer(customer_id=cid, kind="nps", score=i % 11,
                                     comment="服务很好，联系我 r@example.com", answered_at=long_ago))
            session.add(Event(external_id=f"e:{cid}", type="message.replied", customer_id=cid,
                              data={"channel": "sms", "text": "请致电13900000000", "touch_id": None},
                              occurred_at=long_ago, received_at=long_ago))
            if kind == "recent":
                session.add(Event(external_id=f"login:{cid}", type="app.login", customer_id=cid, data={},
                                  occurred_at=now - timedelta(days=30), received_at=now - timedelta(days=30)))
        session.commit()
    engine.dispose()
    return groups
