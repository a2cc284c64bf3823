"""An enrollment about one policy (or claim) waits for, and reaches its goal on, that policy's events only.

A customer with two policies due for their premium is reminded about each; the premium paid on one ends
that reminder, not the other's, and the renewal of the other moves only its own journey on. An event that
names no policy concerns every enrollment, as before. Through the production path: the planner, then
events emitted between runs (``emit_event``, acted on at once). On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import Session, select

from engine.loop.events import emit_event
from engine.planning.planner import plan
from store.clock import utcnow
from store.db import get_engine
from store.models import Enrollment, Policy
from tests.journey_support import journey, send, steps
from tests.plan_support import Book

PREMIUM = journey(
    "premium", "Premium due", '{date: {anchor: policy.premium_due_date, offset: -7d, at: "10:00"}}', steps(
        remind=send(),
        wait_renewal="wait_for: {event: policy.renewed, timeout: 30d, on_event: thanks, on_timeout: exit}",
        thanks=send()), goal="{event: policy.premium_paid}")


def _policy(external_id: str, customer_id: int, due: date) -> Policy:
    today = utcnow().date()
    return Policy(external_id=external_id, customer_id=customer_id, product_line="life", annual_premium=6000.0,
                  start_date=today - timedelta(days=300), expiry_date=today + timedelta(days=400),
                  premium_due_date=due, grace_period_end=due + timedelta(days=60))


def _journeys(book: Book) -> dict[str, tuple[str, str | None, list[str]]]:
    """Policy external id → (state, exit reason, step ids of its touches)."""
    with Session(get_engine(book.url)) as session:
        policies = {p.id: p.external_id for p in session.exec(select(Policy)).all()}
        out = {}
        for e in session.exec(select(Enrollment)).all():
            policy = policies[int(e.occurrence.split("-")[1])]
            steps = sorted(t.step_id for t in book.touches() if t.occurrence == e.occurrence)
            out[policy] = (e.state, e.exit_reason, steps)
    return out


def test_a_policys_events_move_only_the_journeys_about_that_policy(book: Book) -> None:
    book.journey("premium", PREMIUM)
    who = book.customer(external_id="TWO-POLICIES")
    due = utcnow().date() + timedelta(days=6)  # reminded yesterday at 10:00, waiting since
    book.add(_policy("P-A", who, due), _policy("P-B", who, due), _policy("P-C", who, due))
    plan(utcnow(), utcnow() - timedelta(days=2), url=book.url)
    assert {p: j[0] for p, j in _journeys(book).items()} == {"P-A": "waiting", "P-B": "waiting", "P-C": "waiting"}

    emit_event("policy.premium_paid", "TWO-POLICIES", {"policy_id": "P-A"}, "paid-A", url=book.url)
    emit_event("policy.renewed", "TWO-POLICIES", {"policy_id": "P-B"}, "renewed-B", url=book.url)
    after = _journeys(book)
    assert after["P-A"][:2] == ("exited", "goal")  # its own premium paid
    assert after["P-B"][2] == ["remind", "thanks"]  # its own renewal; P-A's payment did not end it
    assert after["P-C"] == ("waiting", None, ["remind"])  # neither event was about P-C

    # An event that names no policy is about all of them (a billing system that sends no id).
    emit_event("policy.premium_paid", "TWO-POLICIES", {}, "paid-unnamed", url=book.url)
    assert _journeys(book)["P-C"][:2] == ("exited", "goal")
