"""Properties of planning over random small books and dates (bounded: 25 examples)."""

from __future__ import annotations

import bisect
import itertools
import tempfile
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from engine.planning.occurrences import local_naive
from engine.planning.planner import plan
from store.db import get_engine
from store.migrate import upgrade
from store.models import Customer, Touch
from tests.plan_support import Book, send_journey, utc

JOURNEYS = {
    "daily": """
        id: daily
        name: Daily
        category: marketing
        priority: 20
        entry: {schedule: {cron: "0 20 * * *"}}
        steps:
          - id: a
            send: {channels: [wechat, sms], template: msg}
          - id: w
            wait: 90m
          - id: b
            send: {channels: [email, sms], template: msg}
    """,
    "weekly": send_journey("weekly", "Weekly", '{schedule: {cron: "45 7 * * MON,THU"}}', step="s", channels="[sms]",
                           category="marketing", priority=80, audience="{tiers: [silver, gold]}"),
    "bday": send_journey("bday", "Birthday", '{date: {anchor: customer.birthday, at: "22:30"}}', step="s",
                         channels="[sms, wechat]"),
    "alert": send_journey("alert", "Alert", '{schedule: {cron: "15 23 * * *"}}', step="s", channels="[wechat]",
                          urgent=True),
}

customer = st.fixed_dictionaries({
    "tier": st.sampled_from(["diamond", "gold", "silver", "potential"]),
    "timezone": st.sampled_from(["Asia/Shanghai", "America/Los_Angeles", "Europe/London"]),
    "consent_sms": st.booleans(), "consent_wechat": st.booleans(), "consent_email": st.booleans(),
    "birthday": st.dates(min_value=datetime(1950, 1, 1).date(), max_value=datetime(2004, 12, 31).date()),
})


def _busiest(times: list[datetime]) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + timedelta(days=7)) - i for i, t in enumerate(times)), default=0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    people=st.lists(customer, min_size=1, max_size=6),
    start=st.datetimes(min_value=datetime(2027, 1, 1), max_value=datetime(2028, 12, 1)),
    days=st.integers(min_value=1, max_value=12),
    steps=st.integers(min_value=1, max_value=3),
)
def test_plans_respect_delivery_rules_and_are_idempotent(
    people: list[dict[str, object]], start: datetime, days: int, steps: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / f'{uuid.uuid4().hex}.db'}"
        upgrade(url)
        book = Book(root, url, monkeypatch)
        for name, text in JOURNEYS.items():
            book.journey(name, text)
        for person in people:
            book.customer(**person)
        begin = start.replace(tzinfo=utc(2027, 1, 1).tzinfo)
        end = begin + timedelta(days=days)
        # Plan in a few consecutive runs (as the scheduler would), then re-run the whole span.
        edges = [begin + (end - begin) * i / steps for i in range(steps + 1)]
        for a, b in itertools.pairwise(edges):
            plan(b, a, url=url)
        with Session(get_engine(url)) as session:
            before = session.exec(select(Touch)).all()
            customers = {c.id: c for c in session.exec(select(Customer)).all()}
        again = plan(end, begin, url=url)
        assert (again.touches_written, again.tasks_written, again.enrollments_written) == (0, 0, 0)
        with Session(get_engine(url)) as session:
            assert len(session.exec(select(Touch)).all()) == len(before)

        marketing: dict[int, list[datetime]] = defaultdict(list)
        for t in before:
            c = customers[t.customer_id]
            if t.status != "planned":
                continue
            assert getattr(c, f"consent_{t.channel}") is True, (t.key, t.channel)
            assert all(getattr(c, f"consent_{ch}") for ch in t.fallback_channels)
            local = local_naive(t.due_at, c.timezone).time()
            quiet = local.hour >= 21 or local.hour < 8
            assert not quiet or (t.urgent and t.category == "service"), (t.key, local)
            if t.category == "marketing":
                marketing[t.customer_id].append(t.due_at)
        for times in marketing.values():
            assert _busiest(times) <= 2
    get_engine.cache_clear()
