"""Scaled out, for real: a Prefect server on loopback (its own PREFECT_HOME and SQLite database),
the flows deployed to a process work pool, two workers, plan + two concurrent dispatch runs on
PostgreSQL. Every touch is sent exactly once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from store.db import make_engine
from store.migrate import upgrade
from tests.conftest import Spawned
from tests.dispatch_support import daytime_zone, make_customers, make_touches
from tests.runtime.prefect_support import api, deploy, deployment_ids, prefect_server, start_workers, stop, wait_runs

pytestmark = pytest.mark.postgres
__all__ = ["prefect_server"]  # the fixture, used by name


def test_two_workers_on_a_process_pool_send_every_touch_once(
    prefect_server: tuple[str, dict[str, str]], pg_url: str, tmp_path: Path, spawn: Spawned
) -> None:
    base, env = prefect_server
    upgrade(pg_url)
    engine = make_engine(pg_url)
    # The workers dispatch at the wall clock: the customers are where it is day (quiet hours hold no send).
    ids = make_customers(engine, 4000, timezone=daytime_zone())
    make_touches(engine, ids)
    with engine.begin() as conn:
        conn.execute(text("UPDATE touch SET template = 'silver_weekly_push'"))
    env = {**env, "JOURNEYS_DATABASE_URL": pg_url, "JOURNEYS_DISPATCH_WORKERS": "2"}

    deployed = deploy(env, "journeys-test")
    assert "dispatch/dispatch" in deployed and "plan/plan" in deployed and "plan-slice/plan-slice" in deployed

    # Two slots each: the plan run waits on its plan-slice runs while holding one.
    workers = start_workers(spawn, env, "journeys-test", tmp_path, limit=2)
    try:
        deployments = deployment_ids(base)
        run_ids = []
        for name, params in (("plan", {}), ("dispatch", {"batch_size": 500}), ("dispatch", {"batch_size": 500})):
            run = api(base, f"/deployments/{deployments[name]}/create_flow_run", {"parameters": params})
            assert isinstance(run, dict)
            run_ids.append(run["id"])
        states = wait_runs(base, run_ids)
        assert set(states.values()) == {"COMPLETED"}, states
    finally:
        for w in workers:
            stop(w)

    keys: Counter[str] = Counter()
    for outbox in tmp_path.glob("outbox-w*/sms.jsonl"):
        keys.update(json.loads(line)["touch_key"] for line in outbox.read_text().splitlines())
    assert len(keys) == 4000 and max(keys.values()) == 1
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT status, count(*) FROM touch GROUP BY status")).all()) == {"sent": 4000}
    engine.dispose()
