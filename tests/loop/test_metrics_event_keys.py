"""Complaint timings join tasks to their event whichever way the occurrence names it:
the planner's ``event-<row id>`` or the event's external id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from engine.loop.metrics import compute_metrics
from store.db import get_engine
from store.models import AgentTask, Customer, Event


def test_complaint_response_uses_planner_event_occurrence(db_url: str) -> None:
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    with Session(get_engine(db_url)) as session:
        customer = Customer(external_id="C1", name="张三", tier="gold", created_at=t0, updated_at=t0)
        session.add(customer)
        session.flush()
        assert customer.id is not None
        events = []
        for i in range(2):
            event = Event(external_id=f"api-{i}", type="complaint.filed", customer_id=customer.id,
                          occurred_at=t0, received_at=t0)
            session.add(event)
            session.flush()
            events.append(event)
        # Task of event 0 keyed the planner's way, done after 10 h; event 1's after 30 h by external id.
        for i, (occurrence, hours) in enumerate([(f"event-{events[0].id}", 10), ("api-1", 30)]):
            session.add(AgentTask(
                key=f"k{i}", customer_id=customer.id, journey_id="complaint-response", journey_version="v",
                step_id="call", occurrence=occurrence, queue="complaints", due_at=t0, created_at=t0,
                status="done", completed_at=t0 + timedelta(hours=hours),
                outcome_code="resolved",
            ))
        session.commit()
    report = compute_metrics(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC),
                             now=datetime(2026, 4, 1, tzinfo=UTC), url=db_url).as_dict()
    # (10 h + 30 h) / 2 complaints = 20 h; both closed by "resolved" at the same moments.
    assert report["total"]["complaint_response_hours"] == 20.0
    assert report["total"]["closure_cycle_hours"] == 20.0
