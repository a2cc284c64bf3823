"""Fault injection (SPEC §6, §7, §10): what goes wrong in production, done on purpose.

1. 30 % of Twilio API calls fail (timeouts after the message was accepted, 500s before and
   after it was accepted, 429, permanent errors) while the real dispatcher sends through the
   official SDK to the Twilio stand-in, whose status callbacks reach our real receipts
   webhook (or, in the second run, never come: our webhook down, or no public URL set).
   Dispatch runs round after round, the clock moved on each time so retries become due.
   Every touch ends delivered/sent or failed with a reason, and the stand-in's
   accepted-message log shows no touch accepted twice.
2. Several threads claim touches and write outcomes on one SQLite file with a busy wait
   of a millisecond, so "database is locked" really happens; ``store.retrying`` re-runs
   the unit of work and nothing is lost or doubled.
3. A journey file turned invalid while the service runs is rejected; the last good
   version stays in force (``engine.language.journey_registry.load_in_force``).

The figures (cases, faults, retries, duplicates) are printed (``pytest -s``) and recorded
as properties (``record_property``) for the lead to quote.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlmodel import Session

from channels.sms_twilio import TwilioSmsAdapter
from engine.language.journey_registry import load_in_force
from engine.loop.receipts import create_hooks_router
from engine.sending.claiming import ClaimedTouch, claim_due
from engine.sending.dispatch import Dispatcher
from engine.sending.recording import insert_outcomes
from standins.faults import FaultPlan
from standins.twilio_api import TwilioStandin
from store.clock import utcnow
from store.db import make_engine
from store.retrying import is_locked, retry_on_locked
from tests.dispatch_support import PlainRenderer, make_customers, make_touches
from tests.uvicorn_support import uvicorn_thread

ROOT = Path(__file__).resolve().parents[2]
FROM = "+15005550006"
N_TOUCHES = 300


@pytest.fixture
def hooks(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Our receipts webhooks (FastAPI router under uvicorn) on loopback; yields the base URL."""
    monkeypatch.delenv("JOURNEYS_PUBLIC_URL", raising=False)
    app = FastAPI()
    app.include_router(create_hooks_router(db_url))
    with uvicorn_thread(app, start_within=10) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("callbacks", [True, False], ids=["callbacks", "no-callbacks"])
def test_thirty_percent_provider_faults_every_touch_settles_none_twice(
    db_url: str, hooks: str, monkeypatch: pytest.MonkeyPatch, record_property: Callable[[str, Any], None],
    callbacks: bool,
) -> None:
    # A 500 for a message Twilio did create ("5xx_after_accept") is the one a retry would send
    # twice; the plain "5xx" is refused before it is created. The SDK sees the same error for both.
    plan = FaultPlan(timeout_rate=0.06, error_5xx_rate=0.06, accepted_5xx_rate=0.06, rate_429=0.06,
                     permanent_rate=0.06, hang_s=2.5, seed=20260101)
    # Without callbacks nothing but the provider lookup can tell that a message went out (a
    # receipt arriving before the retry would otherwise hide a retry that sends twice).
    standin = TwilioStandin(faults=plan, callbacks=callbacks)
    standin.start()
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", standin.auth_token)  # what our webhook checks signatures with
    engine = make_engine(db_url)
    ids = make_customers(engine, N_TOUCHES)
    make_touches(engine, ids, channel="sms")
    adapter = TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url,
                               timeout=1.0, concurrency=32)
    dispatcher = Dispatcher(
        engine, {"sms": adapter}, PlainRenderer(), worker_id="fault-w1", batch_size=100, lanes=2, max_attempts=5,
        callback_url=lambda channel, touch: f"{hooks}/hooks/twilio/status",
    )
    rounds: list[dict[str, Any]] = []

    async def run_all() -> None:
        now = utcnow()
        try:
            for _ in range(12):
                counts = await dispatcher.run_until_idle(now=now)
                # Receipts for this round (including those of sends whose reply timed out) land
                # before the clock moves on and retries fall due: as in production, where a
                # retry waits 30 s or more and a receipt takes a second.
                await asyncio.to_thread(standin.run, standin.drain_callbacks(), 30)
                rounds.append(counts.as_dict())
                if not _open_touches(engine):
                    break
                now += timedelta(hours=2)
        finally:
            await dispatcher.aclose()

    try:
        asyncio.run(run_all())
    finally:
        standin.stop()

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, status, error_class, error_reason, attempts FROM touch")).all()
    engine.dispose()
    statuses = Counter(r.status for r in rows)
    accepted = standin.log.keys()
    duplicates = standin.log.duplicates()
    faults = dict(standin.faults.drawn)
    calls = standin.counts["create"]
    figures = {
        "touches": len(rows), "provider_calls": calls, "faults_injected": sum(faults.values()), "faults": faults,
        "dispatch_rounds": len(rounds), "accepted": len(standin.log), "duplicates": len(duplicates),
        "final_statuses": dict(statuses),
        "failure_reasons": dict(Counter(r.error_reason for r in rows if r.status == "failed")),
    }
    print(f"\nfault injection: {figures}")
    for name, value in figures.items():
        record_property(name, value)

    assert sum(faults.values()) >= 0.2 * calls  # the faults really were injected (30 % planned)
    assert set(faults) == {"timeout", "5xx", "5xx_after_accept", "429", "permanent"}
    assert len(rows) == N_TOUCHES
    assert set(statuses) <= {"delivered", "sent", "failed"}, statuses  # nothing left planned or sending
    for r in rows:
        if r.status == "failed":
            assert r.error_reason, r
    assert duplicates == {}  # no touch accepted twice, timeouts and 500s after accepting included
    sent_keys = {r.key for r in rows if r.status in ("delivered", "sent")}
    assert sent_keys <= set(accepted)  # everything we record as sent, the provider took
    # A send whose reply timed out or was a 500 may be classed "unknown" (ambiguous: never retried,
    # so never doubled). If the provider did take it, its receipt should still make it delivered.
    unsettled = [(r.key, r.error_class) for r in rows if r.key in accepted and r.key not in sent_keys]
    record_property("accepted_but_recorded_failed", len(unsettled))
    print(f"accepted by the provider but recorded failed: {len(unsettled)}")
    assert {cls for _, cls in unsettled} <= {"unknown"}, unsettled[:5]
    # Each permanent error fails its touch (no fallback channel here), unless a loaded machine made
    # the client time out before it read the 400 (then it was looked up, and sent again); the
    # rest ran out of retries.
    assert 0 < sum(1 for r in rows if r.status == "failed" and r.error_class == "permanent") <= faults["permanent"]
    assert statuses["delivered"] + statuses["sent"] + statuses["failed"] == N_TOUCHES


def _open_touches(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM touch WHERE status IN ('planned', 'sending')")).scalar())


# --- 2. SQLite lock contention ------------------------------------------------------------------------


def _impatient_engine(url: str) -> Any:
    """An engine whose connections give up on a lock after 1 ms, so contention surfaces as errors."""
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _short_busy(dbapi_connection: Any, _record: Any) -> None:  # runs after store.db's own pragmas
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=1")
        cursor.close()

    return engine


def test_database_is_locked_is_retried_not_lost(db_url: str, record_property: Callable[[str, Any], None]) -> None:
    setup = make_engine(db_url)
    n_touches, n_threads, outcomes_per_thread = 600, 6, 150
    make_touches(setup, make_customers(setup, n_touches), channel="sms")
    setup.dispose()
    engine = _impatient_engine(db_url)
    now = utcnow() + timedelta(minutes=1)
    claimed: dict[int, list[ClaimedTouch]] = {}
    retries = Counter[str]()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def counted(kind: str) -> Callable[[int, BaseException], None]:
        def note(_attempt: int, _exc: BaseException) -> None:
            with lock:
                retries[kind] += 1
        return note

    def worker(n: int) -> None:
        try:
            mine: list[ClaimedTouch] = []
            written = 0
            while True:
                batch = retry_on_locked(lambda: claim_due(engine, f"w{n}", 7, now), attempts=200,
                                        on_retry=counted("claim"))
                mine.extend(batch)
                if written < outcomes_per_thread:
                    rows = [{"dedup_key": f"lock:{n}:{written + i}", "touch_id": None, "customer_id": None,
                             "channel": "sms", "kind": "replied", "detail": {"n": n}, "occurred_at": now}
                            for i in range(5)]

                    def write(rows: list[dict[str, Any]] = rows) -> None:
                        with engine.begin() as conn:
                            insert_outcomes(conn, rows)

                    retry_on_locked(write, attempts=200, on_retry=counted("outcome"))
                    written += len(rows)
                if not batch and written >= outcomes_per_thread:
                    break
            claimed[n] = mine
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [], errors

    # Without the retry the same contention is an error: the helper is what saves the work.
    def bare_claim() -> BaseException | None:
        other = _impatient_engine(db_url)
        with other.connect() as holder:
            holder.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                claim_due(other, "bare", 1, now)
            except Exception as exc:
                return exc
            finally:
                holder.rollback()
                other.dispose()
        return None

    bare = bare_claim()
    with engine.connect() as conn:
        outcome_rows = conn.execute(text("SELECT count(*) FROM outcome WHERE dedup_key LIKE 'lock:%'")).scalar()
        sending = conn.execute(text("SELECT count(*) FROM touch WHERE status = 'sending'")).scalar()
    engine.dispose()
    all_claims = [t.id for batch in claimed.values() for t in batch]
    figures = {"threads": n_threads, "touches": n_touches, "claimed": len(all_claims),
               "claimed_twice": len(all_claims) - len(set(all_claims)), "outcomes_written": outcome_rows,
               "locked_errors_retried": dict(retries)}
    print(f"\nSQLite lock contention: {figures}")
    for name, value in figures.items():
        record_property(name, value)

    assert bare is not None and is_locked(bare)
    assert sum(retries.values()) > 0  # contention really happened
    assert len(all_claims) == n_touches and len(set(all_claims)) == n_touches  # each touch claimed exactly once
    assert sending == n_touches
    assert outcome_rows == n_threads * outcomes_per_thread  # every outcome written, none twice


# --- 3. a journey file broken while the service runs ---------------------------------------------------


def test_journey_made_invalid_while_running_keeps_last_good_version(
    db_url: str, tmp_path: Path, record_property: Callable[[str, Any], None]
) -> None:
    folder = tmp_path / "journeys"
    folder.mkdir()
    source = ROOT / "journeys" / "birthday-care.yaml"
    live = folder / source.name
    shutil.copy(source, live)
    engine = make_engine(db_url)
    with Session(engine) as session:
        first = load_in_force(session, folder)
        session.commit()
    [journey_id] = list(first.journeys)
    good_version = first.journeys[journey_id].version
    assert first.problems == [] and first.fallbacks == {}

    # An edit that breaks the file: a step with an unknown field and a bad duration.
    bad_step = "steps:\n  - id: oops\n    wait: soon\n    colour: red"
    broken = live.read_text(encoding="utf-8").replace("steps:", bad_step, 1)
    live.write_text(broken, encoding="utf-8")
    with Session(engine) as session:
        second = load_in_force(session, folder)
        session.commit()
    assert second.problems and all(p.path.endswith(source.name) and p.line >= 1 for p in second.problems)
    assert second.fallbacks == {journey_id: good_version}
    assert second.journeys[journey_id].version == good_version
    assert second.journeys[journey_id].source == source.read_text(encoding="utf-8")

    # Fixed again: the new version takes over.
    fixed = source.read_text(encoding="utf-8") + "\n# reviewed\n"
    live.write_text(fixed, encoding="utf-8")
    with Session(engine) as session:
        third = load_in_force(session, folder)
        session.commit()
    engine.dispose()
    assert third.problems == [] and third.fallbacks == {}
    assert third.journeys[journey_id].version not in (good_version, None)
    shown = [str(p) for p in second.problems]
    print(f"\nbroken journey edit: rejected with {shown}; version {good_version} stayed in force")
    record_property("broken_edit_problems", shown)
