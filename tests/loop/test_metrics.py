"""SPEC §8 metrics on the fixed book of ``closed_loop_book.py``, on SQLite and PostgreSQL.

Every expected number is worked out by hand from that file; the arithmetic is in the comments.
"""

from __future__ import annotations

import pytest

from engine.loop.attribution import trace_outcome, trace_task, trace_touch
from engine.loop.metrics import compute_metrics
from store.db import session_scope
from tests.closed_loop_book import END, NOW, START, build


@pytest.fixture
def book(migrated_any_db: str) -> dict[str, int]:
    with session_scope(migrated_any_db) as session:
        return build(session)


def test_totals_for_the_quarter(book: dict[str, int], migrated_any_db: str) -> None:
    report = compute_metrics(START, END, now=NOW, url=migrated_any_db)
    t = report.total
    # Touches planned in Q1, not cancelled: T1 T2 T3 T4 T6 = 5 (T5 cancelled, T7 planned in December).
    assert t["planned"] == 5
    assert t["delivered"] == 2  # T1, T2
    assert t["failed"] == 1  # T3
    assert t["reach_rate"] == 0.4  # 2 / 5
    assert t["delivery_rate"] == 0.5  # 2 / handed to a provider (T1 T2 T3 T6 = 4)
    # Trigger → first sent touch: E1 09:00→10:00 1 h, E2 09:00→12:00 3 h, E3 08:00→10:00 2 h,
    # E4 event evt-renew-1 01-09 00:00 → T6 01-10 00:00 24 h; (1+3+2+24)/4 = 7.5. Holdout E5–E8 excluded.
    assert t["first_touch_hours"] == 7.5
    # Tasks created in Q1, not cancelled: K1..K6 = 6; done K1 24 h, K2 30 h, K3 18 h, K6 6 h → 78/4 = 19.5.
    assert t["tasks"] == 6
    assert t["task_hours"] == 19.5
    # SLA judged: the 4 done + K4 (open, due 03-01 08:00 < now) = 5; K5 is due after now.
    # Met: K1, K3, K6 (K2 done 16:00 after due 10:00) → 3/5.
    assert (t["sla_judged"], t["sla_met"], t["sla_compliance"]) == (5, 3, 0.6)
    # First contact: root tasks done K1 (reached), K2 (call_back, followed by K3), K6 (no_answer) → 1/3.
    assert (t["fcr_cases"], t["first_contact_resolution"]) == (3, 0.3333)
    # Complaints: evt-complaint-1 (02-01 09:00, first done task K2 02-02 16:00 = 31 h; resolved by K3
    # 02-03 10:00 = 49 h) and evt-complaint-2 (no task, > 24 h old at now: judged, missed).
    assert t["complaints"] == 2
    assert t["complaint_response_hours"] == 31.0
    assert t["complaint_within_24h"] == 0.0  # 0 of 2 judged
    assert t["closure_cycle_hours"] == 49.0
    assert t["complaint_rate"] == 40.0  # 2 complaints per 5 customers in force at the start × 100
    # Negative-feedback callbacks: evt-survey-1 (K4 still open, > 6 h: missed) and evt-survey-3
    # (K6 done after exactly 6 h: met); evt-survey-2 got no task and is not a callback.
    assert t["negative_callbacks"] == 2
    assert t["negative_callback_hours"] == 6.0
    assert t["negative_callback_within_6h"] == 0.5
    # NPS answers in Q1: 10, 9, 3, 9, 6 → promoters 3, detractors 2 → (3−2)/5×100 = 20.
    assert (t["nps_answers"], t["nps"]) == (5, 20.0)
    # CSAT: 5, 4, 2, 3, 4 → 3 of 5 are ≥ 4.
    assert (t["csat_answers"], t["csat"]) == (5, 0.6)
    # In force on 2026-01-01: C1..C5 = 5 (C6 has no policy). Churned: C2 (only policy cancelled) and
    # C3 (only policy lapsed) → 2/5.
    assert (t["in_force_at_start"], t["churned"], t["churn_rate"], t["retention_rate"]) == (5, 2, 0.4, 0.6)
    # Expiring in Q1: P1 renewed, P3 lapsed, P4 renewed, P5 still active (pending) → 2 / 3 decided.
    assert (t["renewals_due"], t["renewed"], t["renewal_rate"]) == (4, 2, 0.6667)
    assert (t["customers"], t["tier_coverage"]) == (6, 0.8333)  # C6 untiered: 5/6
    # Acted on: T1 replied, T6 clicked, K1 reached, K2 call_back, K3 resolved = 5.
    # Reached: delivered-or-acted touches T1 T2 T6 = 3, plus done tasks K1 K2 K3 K6 = 4 → 5/7.
    assert (t["acted_on"], t["reached"], t["precision"]) == (5, 7, 0.7143)


def test_by_tier_uses_the_tier_at_the_period_start(book: dict[str, int], migrated_any_db: str) -> None:
    groups = compute_metrics(START, END, by="tier", now=NOW, url=migrated_any_db).groups
    # C5 is potential now but was silver on 2026-01-01 (tier history), so it counts under silver.
    # Every tier is listed, diamond and potential (nobody's on 1 January) with zero counts.
    assert set(groups) == {"diamond", "platinum", "gold", "silver", "potential", "none"}
    assert (groups["diamond"]["customers"], groups["diamond"]["planned"], groups["diamond"]["reach_rate"]) == (
        0, 0, None,
    )
    gold, silver, platinum, none = groups["gold"], groups["silver"], groups["platinum"], groups["none"]

    # gold = C1, C2. Touches T1, T2 both delivered.
    assert (gold["planned"], gold["delivered"], gold["reach_rate"], gold["delivery_rate"]) == (2, 2, 1.0, 1.0)
    assert gold["first_touch_hours"] == 2.0  # (1 + 3) / 2
    # Tasks K2 30 h, K3 18 h, K6 6 h → 18; met K3, K6 of 3; FCR roots K2, K6 → none resolved.
    assert (gold["tasks"], gold["task_hours"], gold["sla_compliance"]) == (3, 18.0, 0.6667)
    assert (gold["fcr_cases"], gold["first_contact_resolution"]) == (2, 0.0)
    assert (gold["complaints"], gold["complaint_response_hours"], gold["closure_cycle_hours"]) == (1, 31.0, 49.0)
    assert gold["complaint_rate"] == 50.0  # 1 per 2 in force × 100
    assert (gold["negative_callbacks"], gold["negative_callback_within_6h"]) == (1, 1.0)
    assert (gold["nps"], gold["csat"]) == (100.0, 1.0)  # NPS 10, 9; CSAT 5, 4
    assert (gold["in_force_at_start"], gold["churned"], gold["churn_rate"]) == (2, 1, 0.5)  # C2 churned
    assert (gold["renewals_due"], gold["renewal_rate"]) == (1, 1.0)  # P1 renewed
    # Acted: T1, K2, K3 = 3; reached: T1, T2 + done K2, K3, K6 = 5.
    assert gold["precision"] == 0.6

    # silver = C3, C5. T3 failed, T4 planned, T5 cancelled.
    assert (silver["planned"], silver["delivered"], silver["reach_rate"], silver["delivery_rate"]) == (2, 0, 0.0, 0.0)
    assert silver["first_touch_hours"] == 2.0  # E3
    # K4 open past due (judged, missed), K5 not yet due.
    assert (silver["tasks"], silver["task_hours"], silver["sla_judged"], silver["sla_compliance"]) == (2, None, 1, 0.0)
    assert silver["first_contact_resolution"] is None  # no root task done
    assert (silver["complaints"], silver["complaint_rate"]) == (0, 0.0)
    assert (silver["negative_callbacks"], silver["negative_callback_within_6h"]) == (1, 0.0)
    assert (silver["nps"], silver["csat"]) == (-100.0, 0.5)  # NPS 3, 6; CSAT 2, 4
    assert (silver["in_force_at_start"], silver["churned"], silver["churn_rate"]) == (2, 1, 0.5)  # C3
    assert (silver["renewals_due"], silver["renewed"], silver["renewal_rate"]) == (2, 0, 0.0)  # P3 lapsed, P5 pending
    assert silver["precision"] is None  # nothing reached anyone

    # platinum = C4.
    assert (platinum["planned"], platinum["reach_rate"], platinum["first_touch_hours"]) == (1, 0.0, 24.0)
    assert (platinum["task_hours"], platinum["sla_compliance"], platinum["first_contact_resolution"]) == (
        24.0, 1.0, 1.0,
    )
    assert (platinum["complaints"], platinum["complaint_response_hours"], platinum["complaint_within_24h"]) == (
        1, None, 0.0,
    )
    assert platinum["complaint_rate"] == 100.0
    assert (platinum["nps"], platinum["csat"], platinum["churn_rate"], platinum["retention_rate"]) == (
        100.0, 0.0, 0.0, 1.0,
    )
    assert platinum["precision"] == 1.0  # T6 clicked, K1 reached: 2 / 2

    # none = C6: no policy in force, untiered.
    assert (none["in_force_at_start"], none["churn_rate"], none["customers"], none["tier_coverage"]) == (
        0, None, 1, 0.0,
    )


def test_by_channel_journey_and_branch(book: dict[str, int], migrated_any_db: str) -> None:
    channel = compute_metrics(START, END, by="channel", now=NOW, url=migrated_any_db).groups
    assert set(channel) == {"sms", "wechat", "email", "agent", "unattributed"}
    # sms: T1 delivered, T3 failed, T4 planned → 1/3 reached, 1/2 delivered of handed.
    assert (channel["sms"]["planned"], channel["sms"]["reach_rate"], channel["sms"]["delivery_rate"]) == (
        3, 0.3333, 0.5,
    )
    assert (channel["wechat"]["planned"], channel["wechat"]["reach_rate"]) == (1, 1.0)  # T5 cancelled
    assert channel["wechat"]["precision"] == 0.0  # T2 delivered, no reply
    assert (channel["email"]["reach_rate"], channel["email"]["precision"]) == (0.0, 1.0)  # T6 clicked, no receipt
    # agent: the tasks; 3 acted of 4 done.
    assert (channel["agent"]["tasks"], channel["agent"]["sla_compliance"], channel["agent"]["precision"]) == (
        6, 0.6, 0.75,
    )
    # Survey answers follow the touch that asked: S1 via T1 (sms) … S3, S5 and all CSAT have none.
    assert (channel["sms"]["nps"], channel["email"]["nps"]) == (100.0, 100.0)
    assert (channel["unattributed"]["nps"], channel["unattributed"]["csat"]) == (-100.0, 0.6)
    assert channel["sms"]["churn_rate"] is None  # customer-level figures have no channel

    journey = compute_metrics(START, END, by="journey", now=NOW, url=migrated_any_db).groups
    assert (journey["gold-monthly"]["planned"], journey["gold-monthly"]["first_touch_hours"]) == (2, 2.0)
    # complaint journey: K2 30 h, K3 18 h → 24 h; K3 met its due time, K2 did not.
    assert (journey["complaint"]["task_hours"], journey["complaint"]["sla_compliance"]) == (24.0, 0.5)
    assert journey["survey-callback"]["sla_compliance"] == 0.5  # K6 met, K4 missed
    assert journey["silver-care"]["sla_compliance"] is None  # K5 not yet due

    branch = compute_metrics(START, END, by="branch", now=NOW, url=migrated_any_db).groups
    # SH = C1, C2, C5 (C2 churned); BJ = C3, C4 (C3 churned).
    assert (branch["SH"]["in_force_at_start"], branch["SH"]["churn_rate"]) == (3, 0.3333)
    assert (branch["BJ"]["in_force_at_start"], branch["BJ"]["churn_rate"]) == (2, 0.5)


def test_lift_against_holdout_and_nps_trend(book: dict[str, int], migrated_any_db: str) -> None:
    report = compute_metrics(START, END, now=NOW, url=migrated_any_db)
    # gold-monthly: treated E1 (goal), E2 → 1/2; holdout E5, E6 (goal), E7, E8 → 1/4.
    assert report.lift == [{
        "journey": "gold-monthly", "treated_enrolled": 2, "treated_goals": 1, "treated_rate": 0.5,
        "holdout_enrolled": 4, "holdout_goals": 1, "holdout_rate": 0.25, "lift_points": 0.25, "relative_lift": 1.0,
    }]
    # Weekly buckets from 2026-01-01: S1 (day 5), S2 (day 6.5) → week 0, both promoters: 100;
    # S3 (day 7) → week 1: −100; S4 (day 31, 9) and S5 (day 32, 6) → week 4: 0.
    assert [(b["from"][:10], b["answers"], b["nps"]) for b in report.nps_trend] == [
        ("2026-01-01", 2, 100.0), ("2026-01-08", 1, -100.0), ("2026-01-29", 2, 0.0),
    ]


def test_every_outcome_traces_back_to_journey_step_and_rule(book: dict[str, int], migrated_any_db: str) -> None:
    with session_scope(migrated_any_db) as session:
        replied = trace_outcome(session, book["O2"])
        assert replied is not None
        assert (replied.journey_id, replied.journey_version, replied.step_id, replied.channel) == (
            "gold-monthly", "v1", "send", "sms",
        )
        assert (replied.entry_rule, replied.split_branch, replied.occurrence) == ("gold-monthly: entry", "a", "2026-01")
        assert replied.touch_id == book["T1"] and replied.enrollment_id == book["E1"]
        assert [o["kind"] for o in replied.outcomes] == ["delivered", "replied"]

        resolved = trace_outcome(session, book["O-K3"])
        assert resolved is not None
        assert (resolved.journey_id, resolved.task_id, resolved.occurrence, resolved.trigger_event_type) == (
            "complaint", book["K3"], "evt-complaint-1", "complaint.filed",
        )
        touch = trace_touch(session, book["T6"])
        assert touch is not None and touch.trigger_event_type == "app.login" and touch.entry_rule == "renewal: entry"
        task = trace_task(session, book["K1"])
        assert task is not None and [o["kind"] for o in task.outcomes] == ["task:reached"]
        assert trace_outcome(session, 999_999) is None


def test_a_webhook_call_is_not_a_touch_of_the_customer(book: dict[str, int], migrated_any_db: str) -> None:
    """A webhook step's call to another system, sent before the enrollment's SMS, changes no figure."""
    from sqlmodel import select

    from store.models import WEBHOOK_CHANNEL, Enrollment, Touch

    before = compute_metrics(START, END, now=NOW, url=migrated_any_db)
    with session_scope(migrated_any_db) as session:
        e1 = session.exec(select(Enrollment).where(Enrollment.id == book["E1"])).one()
        first = session.exec(select(Touch).where(Touch.id == book["T1"])).one()
        assert first.sent_at is not None
        session.add(Touch(
            key="W1:key", customer_id=e1.customer_id, journey_id=e1.journey_id, journey_version="v1",
            step_id="call_crm", occurrence=e1.occurrence, category="service", channel=WEBHOOK_CHANNEL,
            template="crm_case_opened", split_branch=e1.split_branch, entry_rule="webhook",
            planned_for=e1.entered_at, due_at=e1.entered_at, status="delivered", created_at=e1.entered_at,
            sent_at=e1.entered_at, delivered_at=e1.entered_at))
    after = compute_metrics(START, END, now=NOW, url=migrated_any_db)
    assert after.total == before.total
    assert (after.total["planned"], after.total["first_touch_hours"]) == (5, 7.5)
