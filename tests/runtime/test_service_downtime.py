"""A scheduled job whose time passed while ``journeys run`` was down runs once when the service is back,
however long the outage: the daily churn check missed by six hours, or the weekly retier by three days.

The real scheduler of the service (APScheduler, its job store in the product's SQLite file) is stopped with
the churn check due in the past, as a service stopped over its time leaves it, and started again. With the
job's grace time of an hour it was counted as missed and skipped to the next day; now it runs once.
A job stored by an earlier release (with that grace time) is brought up to date by ``ensure_jobs``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

from engine.runtime.service import build_scheduler, ensure_jobs
from store.db import get_engine

RAN: list[str] = []


def stand_in_job(name: str) -> None:
    """What the test's stored job runs instead of the flow (the flow itself is not the point here)."""
    RAN.append(name)


@pytest.mark.parametrize("down", [timedelta(minutes=20), timedelta(hours=6), timedelta(days=3)],
                         ids=["20 minutes", "6 hours", "3 days"])
@pytest.mark.parametrize("stored_by", ["this release", "an earlier release"])
def test_a_job_missed_while_the_service_was_down_runs_once_on_start(db_url: str, down: timedelta,
                                                                    stored_by: str) -> None:
    scheduler = build_scheduler(db_url)
    scheduler.start(paused=True)
    ensure_jobs(scheduler)
    for other in [j.id for j in scheduler.get_jobs() if j.id != "churn-check"]:
        scheduler.remove_job(other)  # nothing else is to run in this test
    scheduler.shutdown(wait=True)
    # Its time came while the service was down (written to the store as a stopped service leaves it: a running
    # scheduler would act on it); an earlier release stored an hour's grace with it.
    store = SQLAlchemyJobStore(engine=get_engine(db_url))
    store.start(build_scheduler(db_url), "default")
    job = store.lookup_job("churn-check")
    assert job is not None
    grace = {"misfire_grace_time": 3600} if stored_by == "an earlier release" else {}
    job._modify(func=stand_in_job, next_run_time=datetime.now(UTC) - down, **grace)
    store.update_job(job)

    RAN.clear()
    seen: list[str] = []
    decided = threading.Event()

    def told(event: JobEvent) -> None:
        seen.append({EVENT_JOB_MISSED: "missed", EVENT_JOB_EXECUTED: "ran"}.get(event.code, "failed"))
        decided.set()

    again = build_scheduler(db_url)
    again.add_listener(told, EVENT_JOB_MISSED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    again.start(paused=True)
    ensure_jobs(again)
    for other in [j.id for j in again.get_jobs() if j.id != "churn-check"]:
        again.remove_job(other)
    again.resume()
    try:
        assert decided.wait(60), "the scheduler decided nothing about the churn check"
    finally:
        again.shutdown(wait=True)
    assert seen == ["ran"] and RAN == ["churn-check"]
    job_next = build_scheduler(db_url)
    job_next.start(paused=True)
    try:
        job = job_next.get_job("churn-check")
        assert job is not None and job.next_run_time > datetime.now(UTC)  # next at its own time, once
    finally:
        job_next.shutdown(wait=False)
