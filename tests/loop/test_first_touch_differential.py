"""Differential test of the report's touch figures: ``compute_metrics`` against a reference worked out here.

Small random books shaped like the ones whose statements migrations 0019 and 0020 serve: enrollments whose
trigger is named by ``event_id``, by the planner's ``event-<id>`` occurrence, by an event's external id or
by nothing (the entry moment), none to several touches each (ties of ``sent_at``, touches not sent,
webhook calls, touches of another occurrence of the same customer and journey), replies and clicks on a
few touches among many task outcomes that name none. The reference follows the definitions in
``engine.loop.metrics`` enrollment by enrollment, in Python; the report must agree on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from engine.loop.metrics import compute_metrics
from engine.loop.tables import customer_t, enrollment_t, event_t, outcome_t, touch_t
from store.db import get_engine
from store.models import WEBHOOK_CHANNEL, Customer, Enrollment, Event, Outcome, Touch

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
NOW = END + timedelta(days=2)
CUSTOMERS = 12
JOURNEYS = ("renewal", "welcome")


def _moment(rng: random.Random) -> datetime:
    """A whole minute from a week before the period to a week after it: some enrollments fall outside."""
    return START - timedelta(days=7) + timedelta(minutes=rng.randrange(0, 44 * 24 * 60, 30))


def _book(seed: int) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    customers = [{"id": i, "external_id": f"C{i}", "name": f"C{i}", "tier": "gold", "branch": "SH",
                  "created_at": START - timedelta(days=400), "updated_at": START - timedelta(days=400)}
                 for i in range(1, CUSTOMERS + 1)]
    events = [{"id": i, "external_id": f"ext-{i}", "type": "claim.filed", "customer_id": rng.randint(1, CUSTOMERS),
               "data": {}, "occurred_at": (at := _moment(rng)), "received_at": at} for i in range(1, 16)]
    enrollments, touches, outcomes = [], [], []
    for i in range(60):
        customer, journey = rng.randint(1, CUSTOMERS), rng.choice(JOURNEYS)
        event = rng.choice(events)
        form = rng.choice(("keyed", "planner", "external", "none"))
        occurrence = {"keyed": f"ext-{event['id']}", "planner": f"event-{event['id']}",
                      "external": event["external_id"], "none": f"2026-W{i}"}[form]
        entered = _moment(rng)
        enrollments.append({"customer_id": customer, "journey_id": journey, "journey_version": "v1",
                            "occurrence": occurrence, "step_id": "s", "state": "exited", "entered_at": entered,
                            "event_id": event["id"] if form == "keyed" else None,
                            "split_branch": "holdout" if rng.random() < 0.1 else None})
        # The same customer, journey and occurrence are one enrollment (the unique key): a repeat is left out.
        if len({(e["customer_id"], e["journey_id"], e["occurrence"]) for e in enrollments}) < len(enrollments):
            enrollments.pop()
            continue
        sent_base = entered + timedelta(minutes=rng.choice((0, 30, 90, 600)))
        for step in range(rng.choice((0, 1, 2, 3, 3))):
            sent = None if rng.random() < 0.2 else sent_base + timedelta(minutes=rng.choice((0, 0, 60)))
            touches.append({"key": f"k{i}:{step}", "customer_id": customer, "journey_id": journey,
                            "journey_version": "v1", "step_id": f"s{step}", "occurrence": occurrence,
                            "category": "service", "channel": rng.choice(("sms", "sms", "wechat", WEBHOOK_CHANNEL)),
                            "template": "t", "planned_for": entered, "due_at": entered, "created_at": entered,
                            "status": rng.choice(("delivered", "sent", "failed", "cancelled")) if sent else "planned",
                            "sent_at": sent})
        # A touch of another occurrence of the same customer and journey: not this enrollment's.
        touches.append({**touches[-1], "key": f"other{i}", "occurrence": f"other-{i}",
                        "sent_at": entered - timedelta(days=1)} if touches else None)
        if touches[-1] is None:
            touches.pop()
    with_ids = [{**t, "id": n} for n, t in enumerate(touches, start=1)]
    for t in with_ids:
        for kind in rng.sample(("replied", "clicked", "delivered"), rng.randint(0, 2)):
            outcomes.append({"touch_id": t["id"], "customer_id": t["customer_id"], "kind": kind, "detail": {},
                             "occurred_at": t["planned_for"]})
    outcomes += [{"touch_id": None, "customer_id": 1, "kind": "task:reached", "detail": {}, "occurred_at": START}
                 for _ in range(200)]
    return {"customers": customers, "events": events, "enrollments": enrollments, "touches": with_ids,
            "outcomes": outcomes}


def _expected(book: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The figures by their definitions, one enrollment and one touch at a time."""
    events = {e["id"]: e for e in book["events"]}
    by_external = {e["external_id"]: e for e in book["events"]}
    seconds = []
    for e in book["enrollments"]:
        if not START <= e["entered_at"] < END or e["split_branch"] == "holdout":
            continue
        if e["event_id"] is not None:
            trigger = events[e["event_id"]]["occurred_at"]
        elif e["occurrence"].startswith("event-") and int(e["occurrence"][6:]) in events:
            trigger = events[int(e["occurrence"][6:])]["occurred_at"]
        elif e["occurrence"] in by_external:
            trigger = by_external[e["occurrence"]]["occurred_at"]
        else:
            trigger = e["entered_at"]
        sent = [t["sent_at"] for t in book["touches"]
                if (t["customer_id"], t["journey_id"], t["occurrence"]) == (e["customer_id"], e["journey_id"],
                                                                            e["occurrence"])
                and t["channel"] != WEBHOOK_CHANNEL and t["sent_at"] is not None]
        if sent:
            seconds.append((min(sent) - trigger).total_seconds())
    in_period = [t for t in book["touches"] if START <= t["planned_for"] < END and t["channel"] != WEBHOOK_CHANNEL]
    acted_ids = {o["touch_id"] for o in book["outcomes"] if o["kind"] in ("replied", "clicked")}
    acted = sum(1 for t in in_period if t["id"] in acted_ids)
    return {
        "first_touch_hours": round(sum(seconds) / len(seconds) / 3600, 2) if seconds else None,
        "planned": sum(1 for t in in_period if t["status"] != "cancelled"),
        "delivered": sum(1 for t in in_period if t["status"] == "delivered"),
        "_acted": acted,
        "_reached": sum(1 for t in in_period if t["status"] == "delivered" or t["id"] in acted_ids),
    }


@pytest.mark.parametrize("seed", range(6))
def test_touch_figures_are_those_of_the_rows(migrated_any_db: str, seed: int) -> None:
    book = _book(seed)
    with get_engine(migrated_any_db).begin() as conn:
        for table, model, key in ((customer_t, Customer, "customers"), (event_t, Event, "events"),
                                  (enrollment_t, Enrollment, "enrollments"), (touch_t, Touch, "touches"),
                                  (outcome_t, Outcome, "outcomes")):
            # Through the model, for the defaults of the columns the book leaves out.
            rows = [model(**row).model_dump(exclude=set() if "id" in row else {"id"}) for row in book[key]]
            if rows:
                conn.execute(sa.insert(table), rows)
        if conn.dialect.name == "postgresql":
            for table in ("customer", "event", "touch"):  # rows given their ids: the sequences move past them
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT max(id) FROM {table}))")
    expected = _expected(book)
    found = compute_metrics(START, END, None, now=NOW, url=migrated_any_db)
    total = found.total
    assert total["first_touch_hours"] == pytest.approx(expected["first_touch_hours"], abs=0.0051)
    assert (total["planned"], total["delivered"]) == (expected["planned"], expected["delivered"])
    # Tasks add to acted_on and reached too; this book's tasks are none, so those are the touches' own.
    assert (total["acted_on"], total["reached"]) == (expected["_acted"], expected["_reached"])
    by_journey = compute_metrics(START, END, "journey", now=NOW, url=migrated_any_db)
    assert sum(g.get("planned") or 0 for g in by_journey.groups.values()) == expected["planned"]
