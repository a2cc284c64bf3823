"""Planning spread over Prefect workers (``engine.runtime.plan_slices``): on PostgreSQL, a real
Prefect server and two process workers plan a seeded book in slices and write exactly what one
process writes for the same book, even when a slice fails once halfway (its first chunk committed,
its second refused by the database) and is run again."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from engine.demo.seeding import seed_book
from engine.planning.plan_output import PlanResult
from engine.planning.planner import plan_ahead
from engine.runtime.plan_slices import result_from_json, result_json, slices_of
from store.db import get_engine, make_engine
from store.migrate import upgrade
from tests.conftest import Spawned
from tests.db_support import scratch_postgres_database
from tests.runtime.prefect_support import api, deploy, deployment_ids, prefect_server, start_workers, stop, wait_runs

__all__ = ["prefect_server"]  # the fixture, used by name

# Monday 1 March 2027, 16:00 UTC: the weekly, monthly and quarterly cadences fire on the day planned.
NOW = datetime(2027, 3, 1, 16, 0, tzinfo=UTC)
CUSTOMERS, CHUNK, SLICE = 1200, 200, 400  # six chunks in three slices of two


def _stored(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """What a plan run leaves in the store, without the surrogate ids and creation times."""
    queries = {
        "touches": "SELECT key, customer_id, journey_id, step_id, channel, template, due_at, planned_for, status, "
                   "error_reason FROM touch",
        "tasks": "SELECT key, customer_id, queue, priority, due_at, status, event_id FROM agent_task",
        "enrollments": "SELECT customer_id, journey_id, occurrence, step_id, state, next_at, entered_at, exited_at, "
                       "exit_reason, step_started_at FROM enrollment",
        "events": "SELECT external_id, processed_at IS NULL FROM event",
        "attributes": "SELECT id, CAST(attributes AS TEXT) FROM customer",
    }
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {name: sorted(tuple(r) for r in conn.execute(text(sql)).all()) for name, sql in queries.items()}
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_two_workers_plan_slices_as_one_process_plans_and_a_slice_failing_once_is_run_again(
    prefect_server: tuple[str, dict[str, str]], pg_url: str, postgres_admin_url: str, tmp_path: Path,
    spawn: Spawned,
) -> None:
    base, env = prefect_server
    upgrade(pg_url)
    seed_book(pg_url, CUSTOMERS, seed=5, as_of=date(2027, 2, 1))
    with scratch_postgres_database(postgres_admin_url, f"{pg_url.rsplit('/', 1)[1]}_one") as (one_url, _admin):
        upgrade(one_url)
        seed_book(one_url, CUSTOMERS, seed=5, as_of=date(2027, 2, 1))
        single = plan_ahead(NOW, url=one_url, chunk=CHUNK, workers=1)
        expected = _stored(one_url)
        get_engine.cache_clear()
    assert single.planned > 500 and single.tasks > 50  # a day with work in every slice

    # The second slice's second chunk (601..800) is refused once by the database, after its first
    # chunk (401..600) committed.
    with make_engine(pg_url).begin() as conn:
        conn.execute(text("CREATE SEQUENCE refusals"))
        conn.execute(text(
            "CREATE FUNCTION refuse_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF nextval('refusals') = 1 THEN RAISE EXCEPTION 'could not extend file: No space left on device'; "
            "END IF; RETURN NEW; END $$"))
        conn.execute(text("CREATE TRIGGER refuse_once BEFORE INSERT ON enrollment FOR EACH ROW "
                          "WHEN (NEW.customer_id BETWEEN 601 AND 800) EXECUTE FUNCTION refuse_once()"))

    env = {**env, "JOURNEYS_DATABASE_URL": pg_url}
    deploy(env, "journeys-test")
    # At INFO a worker logs the id of each flow run it submits: which worker took which slice.
    workers = start_workers(spawn, env, "journeys-test", tmp_path, count=2, limit=2, PREFECT_LOGGING_LEVEL="INFO")
    try:
        deployments = deployment_ids(base)
        run = api(base, f"/deployments/{deployments['plan']}/create_flow_run",
                  {"parameters": {"now": NOW.isoformat(), "slice_ids": SLICE, "chunk": CHUNK}})
        assert wait_runs(base, [run["id"]], timeout=600) == {run["id"]: "COMPLETED"}
        slices = api(base, "/flow_runs/filter",
                     {"deployments": {"id": {"any_": [deployments["plan-slice"]]}}, "limit": 50})
    finally:
        for w in workers:
            stop(w)

    states = Counter(r["state"]["type"] for r in slices)
    assert states == {"COMPLETED": 3, "FAILED": 1}, states
    failed = next(r for r in slices if r["state"]["type"] == "FAILED")
    assert failed["parameters"]["ranges"] == [[401, 600], [601, 800]]
    assert _stored(pg_url) == expected
    logs = [(tmp_path / f"w{i}.log").read_text() for i in (1, 2)]
    assert all(any(f"submitting flow run '{r['id']}'" in log for r in slices) for log in logs), "a worker idled"


@given(st.lists(st.integers(1, 50), min_size=1, max_size=30), st.integers(1, 200))
def test_slices_keep_the_chunks_in_order_and_within_their_span(sizes: list[int], slice_ids: int) -> None:
    ranges, first = [], 1
    for size in sizes:
        ranges.append((first, first + size - 1))
        first += size + (size % 3)  # gaps: chunks with nothing due are left out
    slices = slices_of(ranges, slice_ids)
    assert [tuple(r) for s in slices for r in s] == ranges
    for s in slices:
        assert len(s) == 1 or s[-1][1] - s[0][0] + 1 <= slice_ids


def test_a_slice_result_survives_its_journey_through_json() -> None:
    result = PlanResult(NOW, NOW, False, planned=7, tasks=2, touches_written=5, enrollments_advanced=3)
    result.by_journey_channel.update({("silver-weekly-push", "wechat"): 4, ("gold-monthly-callback", "sms"): 3})
    result.dropped.update({"cap": 2})
    result.tasks_by_queue.update({"service": 2})
    back = result_from_json(result_json(result), NOW, NOW, False)
    total = PlanResult(NOW, NOW, False)
    total.merge(back)
    total.merge(back)
    assert total.planned == 14 and total.touches_written == 10 and total.enrollments_advanced == 6
    assert total.by_journey_channel == Counter({("silver-weekly-push", "wechat"): 8,
                                                ("gold-monthly-callback", "sms"): 6})
    assert total.dropped == Counter({"cap": 4}) and total.tasks_by_queue == Counter({"service": 4})
