"""A small fixed book for the closed-loop metrics tests: every row and timestamp is written here,
so each expected figure in ``test_metrics.py`` can be worked out by hand from this file.

Period under test: Q1 2026, [2026-01-01, 2026-04-01), judged at ``NOW`` = 2026-04-01 00:00 UTC.

| customer | tier now | tier at 2026-01-01 | branch | policies |
|---|---|---|---|---|
| C1 | gold | gold | SH | P1 renewed (exp 2026-02-28), P1b active |
| C2 | gold | gold | SH | P2 cancelled (exp 2026-05-31) |
| C3 | silver | silver | BJ | P3 lapsed (exp 2026-01-31) |
| C4 | platinum | platinum | BJ | P4 renewed (exp 2026-01-14), P4b active |
| C5 | potential | silver (history: →silver 12-01, →potential 02-01) | SH | P5 active (exp 2026-03-15) |
| C6 | none | none | (none) | — |
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session

from store.models import AgentTask, Customer, Enrollment, Event, Outcome, Policy, SurveyAnswer, TierChange, Touch

START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
NOW = END


def at(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def build(session: Session) -> dict[str, int]:
    """Insert the book; returns ids by name (C1, T1, K1, ...)."""
    ids: dict[str, int] = {}

    def add(name: str, row: Any) -> Any:
        session.add(row)
        session.flush()
        ids[name] = row.id
        return row

    created = at(1, 1, year=2025)
    for name, tier, branch in [
        ("C1", "gold", "SH"), ("C2", "gold", "SH"), ("C3", "silver", "BJ"),
        ("C4", "platinum", "BJ"), ("C5", "potential", "SH"), ("C6", None, ""),
    ]:
        add(name, Customer(external_id=name, name=f"客户{name}", tier=tier, branch=branch,
                           created_at=created, updated_at=created))
    c = ids
    add("TC1", TierChange(customer_id=c["C5"], from_tier=None, to_tier="silver", score=40,
                          changed_at=at(12, 1, year=2025)))
    add("TC2", TierChange(customer_id=c["C5"], from_tier="silver", to_tier="potential", score=20,
                          changed_at=at(2, 1)))

    for name, cust, status, start, expiry in [
        ("P1", "C1", "renewed", date(2025, 3, 1), date(2026, 2, 28)),
        ("P1b", "C1", "active", date(2026, 3, 1), date(2027, 2, 28)),
        ("P2", "C2", "cancelled", date(2025, 6, 1), date(2026, 5, 31)),
        ("P3", "C3", "lapsed", date(2025, 2, 1), date(2026, 1, 31)),
        ("P4", "C4", "renewed", date(2025, 1, 15), date(2026, 1, 14)),
        ("P4b", "C4", "active", date(2026, 1, 15), date(2027, 1, 14)),
        ("P5", "C5", "active", date(2025, 9, 1), date(2026, 3, 15)),
    ]:
        add(name, Policy(external_id=name, customer_id=c[cust], product_line="motor", annual_premium=1000,
                         start_date=start, expiry_date=expiry, status=status))

    # Events that triggered journeys (complaints, surveys, a renewal reminder).
    for name, cust, type_, when in [
        ("evt-renew-1", "C4", "app.login", at(1, 9)),
        ("evt-complaint-1", "C2", "complaint.filed", at(2, 1, 9)),
        ("evt-complaint-2", "C4", "complaint.filed", at(3, 20)),
        ("evt-survey-1", "C3", "survey.answered", at(3, 1, 1)),
        ("evt-survey-2", "C1", "survey.answered", at(3, 5)),  # positive answer: no callback task
        ("evt-survey-3", "C1", "survey.answered", at(2, 10)),
    ]:
        add(name, Event(external_id=name, type=type_, customer_id=c[cust], occurred_at=when, received_at=when))

    # Enrollments: E1–E4 lead to touches; E5–E8 are the gold-monthly holdout.
    occurrences: dict[str, str] = {}
    for name, cust, journey, occurrence, entered, branch, exit_reason in [
        ("E1", "C1", "gold-monthly", "2026-01", at(1, 5, 9), "a", "goal"),
        ("E2", "C2", "gold-monthly", "2026-01", at(1, 5, 9), "a", None),
        ("E3", "C3", "silver-weekly", "2026-W06", at(2, 2, 8), None, None),
        ("E4", "C4", "renewal", "evt-renew-1", at(1, 9, 6), None, None),
        ("E5", "C6", "gold-monthly", "2026-01", at(1, 5, 9), "holdout", None),
        ("E6", "C5", "gold-monthly", "2026-01", at(1, 5, 9), "holdout", "goal"),
        ("E7", "C3", "gold-monthly", "2026-01", at(1, 5, 9), "holdout", None),
        ("E8", "C4", "gold-monthly", "2026-01", at(1, 5, 9), "holdout", None),
    ]:
        add(name, Enrollment(customer_id=c[cust], journey_id=journey, journey_version="v1", occurrence=occurrence,
                             entered_at=entered, split_branch=branch, exit_reason=exit_reason,
                             entry_rule=f"{journey}: entry"))
        occurrences[name] = occurrence

    for name, cust, enrollment, journey, channel, status, planned, sent in [
        ("T1", "C1", "E1", "gold-monthly", "sms", "delivered", at(1, 5, 10), at(1, 5, 10)),
        ("T2", "C2", "E2", "gold-monthly", "wechat", "delivered", at(1, 5, 10), at(1, 5, 12)),
        ("T3", "C3", "E3", "silver-weekly", "sms", "failed", at(2, 2, 10), at(2, 2, 10)),
        ("T4", "C3", None, "silver-weekly", "sms", "planned", at(3, 30, 10), None),
        ("T5", "C5", None, "silver-weekly", "wechat", "cancelled", at(2, 9, 10), None),
        ("T6", "C4", "E4", "renewal", "email", "sent", at(1, 10), at(1, 10)),
        ("T7", "C1", None, "gold-monthly", "sms", "delivered", at(12, 30, 10, year=2025), at(12, 30, 10, year=2025)),
    ]:
        add(name, Touch(
            key=f"{name}:key", customer_id=c[cust], enrollment_id=c[enrollment] if enrollment else None,
            journey_id=journey, journey_version="v1", step_id="send",
            occurrence=occurrences.get(enrollment or "", name), category="service",
            channel=channel, template="t", split_branch="a" if enrollment in ("E1", "E2") else None,
            entry_rule=f"{journey}: entry", planned_for=planned, due_at=planned, status=status,
            created_at=planned, sent_at=sent, delivered_at=sent if status == "delivered" else None,
        ))
    for name, touch, kind, when in [
        ("O1", "T1", "delivered", at(1, 5, 10, 1)),
        ("O2", "T1", "replied", at(1, 5, 11)),
        ("O3", "T6", "clicked", at(1, 10, 8)),
        ("O4", "T3", "failed", at(2, 2, 10, 1)),
    ]:
        add(name, Outcome(touch_id=c[touch], customer_id=None, kind=kind, occurred_at=when))

    for name, cust, journey, occurrence, created_, due, status, completed, code, parent in [
        ("K1", "C4", "platinum-quarterly", "2026-Q1", at(1, 10, 9), at(1, 12, 9), "done", at(1, 11, 9),
         "reached", None),
        ("K2", "C2", "complaint", "evt-complaint-1", at(2, 1, 10), at(2, 2, 10), "done", at(2, 2, 16),
         "call_back", None),
        ("K3", "C2", "complaint", "evt-complaint-1", at(2, 2, 16), at(2, 3, 16), "done", at(2, 3, 10),
         "resolved", "K2"),
        ("K4", "C3", "survey-callback", "evt-survey-1", at(3, 1, 2), at(3, 1, 8), "open", None, None, None),
        ("K5", "C5", "silver-care", "2026-03", at(3, 31, 12), at(4, 2, 12), "open", None, None, None),
        ("K6", "C1", "survey-callback", "evt-survey-3", at(2, 10), at(2, 11), "done", at(2, 10, 6),
         "no_answer", None),
        ("K7", "C1", "gold-monthly", "2026-02", at(2, 15), at(2, 16), "cancelled", None, None, None),
    ]:
        task = add(name, AgentTask(
            key=f"{name}:key", customer_id=c[cust], journey_id=journey, journey_version="v1", step_id="call",
            occurrence=occurrence, queue="callbacks", due_at=due, created_at=created_, status=status,
            completed_at=completed, outcome_code=code, parent_task_id=c[parent] if parent else None,
            attempt=2 if parent else 1,
        ))
        if code:
            add(f"O-{name}", Outcome(task_id=task.id, customer_id=c[cust], kind=f"task:{code}", occurred_at=completed))

    for name, cust, touch, kind, score, when in [
        ("S1", "C1", "T1", "nps", 10, at(1, 6)),
        ("S2", "C2", "T2", "nps", 9, at(1, 7, 12)),
        ("S3", "C3", None, "nps", 3, at(1, 8)),
        ("S4", "C4", "T6", "nps", 9, at(2, 1)),
        ("S5", "C5", None, "nps", 6, at(2, 2)),
        ("S6", "C1", None, "nps", 8, at(12, 31, year=2025)),  # before the period
        ("S7", "C1", None, "csat", 5, at(3, 5)),
        ("S8", "C2", None, "csat", 4, at(3, 5)),
        ("S9", "C3", None, "csat", 2, at(3, 5)),
        ("S10", "C4", None, "csat", 3, at(3, 5)),
        ("S11", "C5", None, "csat", 4, at(3, 5)),
    ]:
        add(name, SurveyAnswer(customer_id=c[cust], touch_id=c[touch] if touch else None, kind=kind, score=score,
                               answered_at=when))
    session.commit()
    return ids
