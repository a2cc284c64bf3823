"""The shipped premium-due-reminder's goal is per policy, as journeys/README.md says and its header now
says too (it said a payment on any policy ended the reminders of all of them, a note from before
enrollments were scoped to their policy): a premium paid on one policy leaves the other's reminder going."""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import Session, select

from engine.loop.events import emit_event
from engine.planning.planner import plan
from store.clock import utcnow
from store.db import get_engine
from store.models import Enrollment, Policy
from tests.plan_support import Book


def test_a_premium_paid_on_one_policy_ends_only_that_policys_reminder(book: Book) -> None:
    book.shipped("premium-due-reminder")
    who = book.customer(external_id="TWO", tier="gold")
    due = utcnow().date() + timedelta(days=6)  # reminded yesterday at 10:00, waiting for the due day since
    for ext in ("P-A", "P-B"):
        book.add(Policy(external_id=ext, customer_id=who, product_line="life", annual_premium=6000.0,
                        start_date=date(2020, 1, 1), expiry_date=date(2040, 1, 1), status="active",
                        premium_due_date=due, grace_period_end=due + timedelta(days=60)))
    plan(utcnow(), utcnow() - timedelta(days=2), url=book.url)
    emit_event("policy.premium_paid", "TWO", {"policy_id": "P-A"}, "paid-A", url=book.url)
    with Session(get_engine(book.url)) as session:
        ids = {p.id: p.external_id for p in session.exec(select(Policy)).all()}
        states = {ids[int(e.occurrence.split("-")[1])]: (e.state, e.exit_reason)
                  for e in session.exec(select(Enrollment)).all()}
    assert states == {"P-A": ("exited", "goal"), "P-B": ("waiting", None)}
