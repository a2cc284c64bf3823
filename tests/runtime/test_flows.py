"""The Prefect flows on the real local engine: dispatch runs one task per batch and reports its
counts; the other flows run and report too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from store.db import make_engine
from tests.dispatch_support import make_customers, make_touches

# The customers are in Shanghai, where dispatch holds a touch claimed in quiet hours (21:00-08:00): the
# flows dispatch at noon there, not at the wall clock, so that no hour of the day changes what they send.
NOON = datetime(2027, 3, 1, 4, 0, tzinfo=UTC)
DUE = NOON - timedelta(minutes=1)


@pytest.fixture(scope="module")
def prefect_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Prefect's local engine as the product starts it (``engine.runtime.local_engine``: time to spare,
    one retry), on a database of the module's own; stopped when the module ends, even after a failure."""
    from prefect.settings import (
        PREFECT_HOME,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_DATABASE_CONNECTION_URL,
        temporary_settings,
    )

    from engine.runtime.local_engine import start_local_engine, stop_local_engine

    home = tmp_path_factory.mktemp("prefect-home")
    stop_local_engine()  # one started earlier in this process would hold another database
    with temporary_settings({PREFECT_HOME: home, PREFECT_SERVER_ANALYTICS_ENABLED: False,
                             PREFECT_SERVER_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{home / 'prefect.db'}"}):
        try:
            start_local_engine()
            yield
        finally:
            stop_local_engine()


@pytest.fixture
def outbox_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider configured: the dispatch flow writes to the outbox files."""
    for var in ("TWILIO_ACCOUNT_SID", "WECHAT_APPID", "SMTP_HOST"):
        monkeypatch.delenv(var, raising=False)


def _weekly_push(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE touch SET template = 'silver_weekly_push', category = 'marketing'"))


def test_dispatch_flow_sends_in_batch_tasks_and_reports_counts(
    prefect_local: None, db_url: str, tmp_path: Path, outbox_only: None
) -> None:
    from engine.runtime.flows import dispatch_flow

    engine = make_engine(db_url)
    ids = make_customers(engine, 1500)
    make_touches(engine, ids[:1400], channel="sms", due=DUE)
    make_touches(engine, ids[1400:], channel="wechat", fallback=["sms"], due=DUE)
    _weekly_push(engine)
    with engine.begin() as conn:
        # Ten customers have withdrawn consent on every channel since planning.
        conn.execute(text("UPDATE customer SET consent_sms = false, consent_wechat = false WHERE id <= :n"),
                     {"n": ids[9]})

    result = asyncio.run(dispatch_flow(batch_size=500, lanes=2, worker_id="flow-w", now=NOON.isoformat(),
                                       outbox_dir=str(tmp_path)))

    assert result["claimed"] == 1500 and result["sent"] == 1490 and result["cancelled"] == 10
    assert result["batches"] == 3 and result["failed"] == {} and result["held"] == 0
    lines = [json.loads(x) for x in (tmp_path / "sms.jsonl").read_text().splitlines()]
    lines += [json.loads(x) for x in (tmp_path / "wechat.jsonl").read_text().splitlines()]
    assert len(lines) == 1490
    assert "+86138" not in (tmp_path / "sms.jsonl").read_text()  # the outbox masks numbers
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT status, count(*) FROM touch GROUP BY status")).all()) == {
            "sent": 1490, "cancelled": 10}

    from prefect.client.orchestration import get_client

    async def task_runs() -> list[str]:
        async with get_client() as client:
            from prefect.client.schemas.sorting import TaskRunSort

            runs = await client.read_task_runs(limit=200, sort=TaskRunSort.EXPECTED_START_TIME_ASC)
            return [r.name for r in runs]

    names = asyncio.run(task_runs())
    # One task per batch (3 with touches, one per lane finding nothing), not one per message.
    assert 3 <= sum(1 for n in names if n.startswith("dispatch-batch")) <= 5
    engine.dispose()


def test_dispatch_flow_stops_after_max_batches_whatever_the_lanes(
    prefect_local: None, db_url: str, tmp_path: Path, outbox_only: None
) -> None:
    from engine.runtime.flows import dispatch_flow

    engine = make_engine(db_url)
    make_touches(engine, make_customers(engine, 700), channel="sms", due=DUE)
    _weekly_push(engine)
    for lanes, expected in ((2, 300), (1, 200), (4, 200)):
        # 3 batches of 100 with two lanes (the budget is shared, not per lane), then 2 more each time.
        budget = 3 if lanes == 2 else 2
        result = asyncio.run(dispatch_flow(batch_size=100, lanes=lanes, max_batches=budget, worker_id=f"w{lanes}",
                                           now=NOON.isoformat(), outbox_dir=str(tmp_path)))
        assert (result["batches"], result["claimed"], result["sent"]) == (budget, expected, expected)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM touch WHERE status = 'planned'")).scalar() == 0
    engine.dispose()


def test_dispatch_flow_under_a_worker_id_a_live_dispatcher_holds_fails_before_sending(
    prefect_local: None, db_url: str, tmp_path: Path, outbox_only: None
) -> None:
    """The flow takes the worker id as ``journeys dispatch`` does (engine.sending.worker_lease): while
    another live dispatcher holds it, the run fails, settling and sending nothing."""
    from engine.runtime.flows import dispatch_flow
    from engine.sending.dispatch import Dispatcher
    from engine.sending.worker_lease import WorkerIdHeld
    from tests.dispatch_support import PlainRenderer

    engine = make_engine(db_url)
    make_touches(engine, make_customers(engine, 5), channel="sms", due=DUE)
    holder = Dispatcher(engine, {}, PlainRenderer(), worker_id="flow-held")
    holder.hold()
    try:
        with pytest.raises(WorkerIdHeld, match="worker id 'flow-held' is held by a live dispatcher"):
            asyncio.run(dispatch_flow(batch_size=100, lanes=1, worker_id="flow-held", now=NOON.isoformat(),
                                      outbox_dir=str(tmp_path)))
    finally:
        asyncio.run(holder.aclose())
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT status, count(*) FROM touch GROUP BY status")).all()) == {"planned": 5}
    assert not (tmp_path / "sms.jsonl").exists()
    # Let go of by the holder: the same flow now runs.
    result = asyncio.run(dispatch_flow(batch_size=100, lanes=1, worker_id="flow-held", now=NOON.isoformat(),
                                       outbox_dir=str(tmp_path)))
    assert result["claimed"] == 5
    engine.dispose()


def test_other_flows_run_and_report(prefect_local: None, db_url: str) -> None:
    from engine.runtime.flows import outcome_ingest_flow, plan_flow

    assert isinstance(plan_flow(), dict)
    ingest = outcome_ingest_flow()
    assert ingest["outcomes_by_kind"] == {}


def test_scheduled_loop_flows_call_the_real_parts(prefect_local: None, db_url: str) -> None:
    """Tier review, churn check and the monthly NPS survey do their work (none is a silent no-op)."""
    from datetime import date

    from sqlalchemy import text

    from engine.demo.seeding import seed_book
    from engine.runtime.flows import churn_check_flow, nps_survey_flow, tier_review_flow
    from store.db import get_engine

    seed_book(db_url, 300, seed=3, as_of=date(2026, 11, 1))
    review = tier_review_flow("2026-11-30T02:00:00+00:00")
    assert sorted(row["tier"] for row in review["tiers"]) == sorted(
        ["diamond", "platinum", "gold", "silver", "potential"]
    )
    churn = churn_check_flow("2026-11-30T22:00:00+00:00")
    assert churn["candidates"] >= churn["warned"] > 0  # the seeded book has customers gone quiet
    # 1 Dec 10:00 in Shanghai: the survey journey is planned for the customers it applies to.
    nps_survey_flow("2026-12-01T02:30:00+00:00")
    with get_engine(db_url).connect() as conn:
        surveys = conn.execute(
            text("SELECT count(*) FROM touch WHERE journey_id = 'monthly-nps-survey'")
        ).scalar_one()
    assert surveys > 0


def test_the_plan_flow_reports_a_customer_it_left_out(prefect_local: None, db_url: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A row the planner cannot plan (``tests/planning/test_poison_rows.py``) does not fail the scheduled
    flow run: the others are planned and the run's counts say how many were left out."""
    from datetime import UTC, datetime

    from engine.runtime.flows import plan_flow
    from store.models import Event
    from tests.plan_support import Book, send_journey

    book = Book(tmp_path, db_url, monkeypatch)
    book.journey("complaint", send_journey("complaint", "Complaint", "{event: {type: complaint.filed}}",
                                           step="sorry", channels="[sms]"))
    good, bad = book.customer(), book.customer()
    at = datetime(2026, 11, 23, 1, tzinfo=UTC)
    book.add(Event(external_id="fine", type="complaint.filed", customer_id=good, data={}, occurred_at=at,
                   received_at=at),
             Event(external_id="year-1", type="complaint.filed", customer_id=bad, data={},
                   occurred_at=datetime(1, 1, 1, tzinfo=UTC), received_at=at))
    counts = plan_flow(now="2026-11-23T02:00:00+00:00")
    assert counts["failed_customers"] == 1 and counts["touches_written"] == 1
