"""Dispatch end to end against a real HTTP provider on loopback: claim, render, send, record;
retries, channel fallback, consent, and two workers at once."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from sqlalchemy import text

from engine.sending.dispatch import Dispatcher
from engine.sending.rate_limit import TokenBucket
from engine.sending.retry import backoff_delay, decide
from store.clock import utcnow
from store.db import make_engine
from tests.dispatch_support import HttpAdapter, PlainRenderer, RecordingProvider, make_customers, make_touches


def _touches(engine, where: str = "1=1") -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT * FROM touch WHERE {where} ORDER BY id")).all()


def _dispatcher(engine, provider: RecordingProvider, worker: str = "w1", **kw) -> Dispatcher:  # type: ignore[no-untyped-def]
    adapters = {ch: HttpAdapter(ch, provider.port) for ch in ("sms", "wechat", "email")}
    return Dispatcher(engine, adapters, PlainRenderer(), worker_id=worker, **kw)  # type: ignore[arg-type]


async def _run(d: Dispatcher, **kw):  # type: ignore[no-untyped-def]
    try:
        return await d.run_until_idle(**kw)
    finally:
        await d.aclose()


def test_dispatch_sends_every_due_touch_once_and_records_it(db_url: str) -> None:
    engine = make_engine(db_url)
    ids = make_customers(engine, 1200)
    make_touches(engine, ids)
    with RecordingProvider().running() as provider:
        counts = asyncio.run(_run(_dispatcher(engine, provider, batch_size=250, lanes=3)))
    assert counts.sent == 1200 and counts.claimed == 1200 and counts.batches == 5
    assert max(provider.keys().values()) == 1 and len(provider.keys()) == 1200
    rows = _touches(engine)
    assert {r.status for r in rows} == {"sent"}
    assert all(r.provider_message_id and r.sent_at for r in rows)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outcome WHERE kind = 'sent'")).scalar() == 1200
    engine.dispose()


def test_retryable_errors_back_off_then_succeed_or_exhaust(db_url: str) -> None:
    engine = make_engine(db_url)
    ids = make_customers(engine, 3)
    make_touches(engine, ids[:2])
    make_touches(engine, ids[2:], fallback=["wechat"])
    t0 = utcnow()
    with RecordingProvider().running() as provider:
        provider.fail = {"+8613800000000": (503, "503"), "+8613800000001": (429, "429"),
                         "+8613800000002": (500, "500")}
        counts = asyncio.run(_run(_dispatcher(engine, provider, max_attempts=2), now=t0))
        assert counts.deferred == 3 and counts.sent == 0
        rows = _touches(engine)
        assert all(r.status == "planned" and r.error_class == "retryable" and r.attempts == 1 for r in rows)
        # Not due again until the back-off has passed.
        assert asyncio.run(_run(_dispatcher(engine, provider), now=t0 + timedelta(seconds=1))).claimed == 0

        del provider.fail["+8613800000001"]  # the 429 clears up
        later = t0 + timedelta(hours=2)
        counts = asyncio.run(_run(_dispatcher(engine, provider, max_attempts=2), now=later))
        # Second attempt: one sent, one exhausted (no fallback), and one moved to its fallback
        # channel, due at once, so the same run sends it over WeChat.
        assert counts.failed["exhausted"] == 1 and counts.fell_back == 1 and counts.sent == 2
    rows = {r.customer_id: r for r in _touches(engine)}
    assert rows[ids[0]].status == "failed" and rows[ids[0]].error_class == "retryable"
    assert rows[ids[1]].status == "sent" and rows[ids[1]].attempts == 2
    assert rows[ids[2]].status == "sent" and rows[ids[2]].channel == "wechat"
    assert provider.keys()[rows[ids[2]].key] == 1
    engine.dispose()


def test_permanent_failure_falls_back_then_fails_with_masked_reason(db_url: str) -> None:
    engine = make_engine(db_url)
    ids = make_customers(engine, 2)
    make_touches(engine, ids, fallback=["email"])
    with RecordingProvider().running() as provider:
        # Invalid number for both; customer 1's e-mail is rejected too.
        provider.fail = {"+8613800000000": (400, "21211"), "+8613800000001": (400, "21211"),
                         "c1@example.com": (400, "550")}
        counts = asyncio.run(_run(_dispatcher(engine, provider)))
    assert counts.fell_back == 2 and counts.sent == 1 and counts.failed["permanent"] == 1
    rows = {r.customer_id: r for r in _touches(engine)}
    assert rows[ids[0]].status == "sent" and rows[ids[0]].channel == "email"
    failed = rows[ids[1]]
    assert failed.status == "failed" and failed.error_class == "permanent"
    assert failed.error_reason == "rejected c***@example.com"
    with engine.connect() as conn:
        reasons = conn.execute(text("SELECT detail FROM outcome WHERE kind = 'failed'")).scalars().all()
    assert len(reasons) == 3 and all("13800000001" not in r for r in reasons)
    engine.dispose()


def test_opt_out_after_planning_is_honoured(db_url: str) -> None:
    engine = make_engine(db_url)
    ids = make_customers(engine, 3)
    make_touches(engine, ids, fallback=["wechat"])
    with engine.begin() as conn:
        conn.execute(text("UPDATE customer SET consent_sms = false WHERE id IN (:a, :b)"), {"a": ids[0], "b": ids[1]})
        conn.execute(text("UPDATE customer SET consent_wechat = false WHERE id = :a"), {"a": ids[0]})
    with RecordingProvider().running() as provider:
        counts = asyncio.run(_run(_dispatcher(engine, provider)))
    rows = {r.customer_id: r for r in _touches(engine)}
    assert rows[ids[0]].status == "cancelled"
    assert rows[ids[1]].status == "sent" and rows[ids[1]].channel == "wechat"
    assert rows[ids[2]].status == "sent" and rows[ids[2]].channel == "sms"
    assert counts.cancelled == 1 and counts.sent == 2
    assert "+8613800000000" not in {to for _, to in provider.accepted}
    engine.dispose()


def test_two_workers_at_once_never_send_a_touch_twice(migrated_any_db: str) -> None:
    engine = make_engine(migrated_any_db)
    ids = make_customers(engine, 3000)
    make_touches(engine, ids)
    with RecordingProvider().running() as provider:

        async def both() -> list:  # type: ignore[type-arg]
            # Separate engines: each worker has its own connections, as separate processes would.
            workers = [_dispatcher(make_engine(migrated_any_db), provider, worker=f"w{i}", batch_size=200)
                       for i in (1, 2)]
            return await asyncio.gather(*(_run(w) for w in workers))

        first, second = asyncio.run(both())
    assert first.sent > 0 and second.sent > 0
    assert first.sent + second.sent == 3000
    assert len(provider.accepted) == 3000 and max(provider.keys().values()) == 1
    with engine.connect() as conn:
        by_worker = dict(conn.execute(text("SELECT claimed_by, count(*) FROM touch GROUP BY claimed_by")).all())
    assert by_worker == {"w1": first.sent, "w2": second.sent}
    engine.dispose()


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(a, rng=rng).total_seconds() for a in range(1, 12)]
    assert 15 <= delays[0] <= 30 and 30 <= delays[1] <= 60 and 60 <= delays[2] <= 120
    assert all(d <= 3600 for d in delays) and delays[-1] >= 1800
    assert len({round(d, 6) for d in delays[-3:]}) == 3  # jittered, not all at the cap
    now = utcnow()
    assert decide("retryable", 5, ["email"], 5, now).action == "fallback"
    assert decide("retryable", 5, [], 5, now).action == "fail"
    assert decide("permanent", 1, ["email", "wechat"], 5, now).fallback_channels == ("wechat",)


def test_token_bucket_books_time_for_what_it_hands_out() -> None:
    async def take() -> float:
        bucket = TokenBucket(rate=1000, burst=100)
        start = bucket._tat
        for _ in range(3):
            await bucket.acquire(100)
        return bucket._tat - start

    # 300 tokens at 1000/s are booked 0.3 s of the bucket's schedule, burst or not.
    assert abs(asyncio.run(take()) - 0.3) < 0.05
