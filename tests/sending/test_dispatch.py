"""Dispatch end to end against a real HTTP provider on loopback: claim, render, send, record;
retries, channel fallback, consent, and two workers at once."""

from __future__ import annotations

import asyncio
import gc
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

from engine.sending.dispatch import DISPATCH_GC_THRESHOLD, Dispatcher, make_dispatcher
from engine.sending.rate_limit import TokenBucket
from engine.sending.retry import backoff_delay, decide
from store.clock import utcnow
from store.db import make_engine
from store.models import Customer, Touch
from tests.dispatch_support import (
    HttpAdapter,
    PlainRenderer,
    RecordingProvider,
    make_customers,
    make_touches,
    recording_dispatcher,
)


def _touches(engine, where: str = "1=1") -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT * FROM touch WHERE {where} ORDER BY id")).all()


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
        counts = asyncio.run(_run(recording_dispatcher(engine, provider, batch_size=250, lanes=3)))
    assert counts.sent == 1200 and counts.claimed == 1200 and counts.batches == 5
    assert max(provider.keys().values()) == 1 and len(provider.keys()) == 1200
    rows = _touches(engine)
    assert {r.status for r in rows} == {"sent"}
    assert all(r.provider_message_id and r.sent_at for r in rows)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outcome WHERE kind = 'sent'")).scalar() == 1200
    engine.dispose()


def test_a_process_that_dispatches_collects_young_objects_less_often(db_url: str) -> None:
    """A batch's live rows and messages would set Python's collector off every few sends (a third of a
    send's CPU): the process's first dispatcher raises the first-generation threshold, once."""
    engine = make_engine(db_url)
    make_dispatcher(engine, {})
    assert gc.get_threshold()[0] >= DISPATCH_GC_THRESHOLD
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
        counts = asyncio.run(_run(recording_dispatcher(engine, provider, max_attempts=2), now=t0))
        assert counts.deferred == 3 and counts.sent == 0
        rows = _touches(engine)
        assert all(r.status == "planned" and r.error_class == "retryable" and r.attempts == 1 for r in rows)
        # Not due again until the back-off has passed.
        assert asyncio.run(_run(recording_dispatcher(engine, provider), now=t0 + timedelta(seconds=1))).claimed == 0

        del provider.fail["+8613800000001"]  # the 429 clears up
        later = t0 + timedelta(hours=2)
        counts = asyncio.run(_run(recording_dispatcher(engine, provider, max_attempts=2), now=later))
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
        counts = asyncio.run(_run(recording_dispatcher(engine, provider)))
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
        counts = asyncio.run(_run(recording_dispatcher(engine, provider)))
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
            workers = [recording_dispatcher(make_engine(migrated_any_db), provider, worker=f"w{i}", batch_size=200)
                       for i in (1, 2)]
            return await asyncio.gather(*(_run(w) for w in workers))

        first, second = asyncio.run(both())
    assert first.sent > 0 and second.sent > 0
    assert first.sent + second.sent == 3000
    assert len(provider.accepted) == 3000 and max(provider.keys().values()) == 1
    with engine.connect() as conn:
        by_claim = dict(conn.execute(text("SELECT claimed_by, count(*) FROM touch GROUP BY claimed_by")).all())
    # A claim carries the worker id and the process holding it (engine.sending.worker_lease): one process each.
    assert sorted(by_claim.values()) == sorted([first.sent, second.sent])
    assert sorted(claim.split("#")[0] for claim in by_claim) == ["w1", "w2"]
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


# --- delivery rules checked again when sending ------------------------------------------------------


def _set(engine, sql: str, **params) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def _marketing(engine, customer_ids: list[int], *, journey: str, due, status: str = "planned") -> None:  # type: ignore[no-untyped-def]
    make_touches(engine, customer_ids, journey=journey, due=due)
    _set(engine, "UPDATE touch SET category = 'marketing', status = :status WHERE journey_id = :j",
         status=status, j=journey)


def test_consent_withdrawn_after_planning_cancels_marketing_and_moves_service(migrated_any_db: str) -> None:
    engine = make_engine(migrated_any_db)
    ids = make_customers(engine, 1)
    make_touches(engine, ids, journey="renewal", fallback=["wechat"])
    make_touches(engine, ids, journey="push", fallback=["wechat"])
    _set(engine, "UPDATE touch SET category = 'marketing' WHERE journey_id = 'push'")
    _set(engine, "UPDATE customer SET consent_sms = false")
    with RecordingProvider().running() as provider:
        counts = asyncio.run(_run(recording_dispatcher(engine, provider)))
    rows = {r.journey_id: r for r in _touches(engine)}
    assert (rows["renewal"].status, rows["renewal"].channel) == ("sent", "wechat")
    assert (rows["push"].status, rows["push"].channel) == ("cancelled", "sms")
    assert rows["push"].error_reason == "no consent for sms: a marketing touch is not moved to another channel"
    assert counts.cancelled == 1 and counts.fell_back == 1 and counts.sent == 1
    assert provider.accepted == [(rows["renewal"].key, "openid-0")]
    with engine.connect() as conn:
        kinds = conn.execute(text("SELECT kind, detail FROM outcome WHERE touch_id = :t"),
                             {"t": rows["push"].id}).all()
    assert [k for k, _ in kinds] == ["cancelled"] and "marketing touch" in str(kinds[0][1])
    engine.dispose()


def test_fallback_skips_channels_without_consent(db_url: str) -> None:
    engine = make_engine(db_url)
    ids = make_customers(engine, 1)
    make_touches(engine, ids, fallback=["wechat", "email"])
    _set(engine, "UPDATE customer SET consent_wechat = false")
    with RecordingProvider().running() as provider:
        provider.fail = {"+8613800000000": (400, "21211")}  # invalid number: a permanent failure
        counts = asyncio.run(_run(recording_dispatcher(engine, provider)))
    [row] = _touches(engine)
    assert (row.status, row.channel) == ("sent", "email")
    assert counts.fell_back == 1 and counts.sent == 1 and counts.cancelled == 0
    assert [to for _, to in provider.accepted] == ["c0@example.com"]
    engine.dispose()


def test_marketing_cap_is_checked_again_when_sending(migrated_any_db: str) -> None:
    engine = make_engine(migrated_any_db)
    now = utcnow()
    full, room, raced, ahead = make_customers(engine, 4)
    # Customer `full` already had two marketing touches in the last 7 days (sent after planning,
    # e.g. by an event journey): a third is dropped; their service touch still goes.
    _marketing(engine, [full], journey="push-a", due=now - timedelta(days=3), status="delivered")
    _marketing(engine, [full], journey="push-b", due=now - timedelta(days=1), status="sent")
    _marketing(engine, [full], journey="push-c", due=now - timedelta(minutes=5))
    make_touches(engine, [full], journey="renewal", due=now - timedelta(minutes=5))
    # Customer `room` had one: of two due in the same batch the earlier goes, the later is dropped;
    # the one sent 8 days ago is outside the window.
    _marketing(engine, [room], journey="push-old", due=now - timedelta(days=8), status="sent")
    _marketing(engine, [room], journey="push-a", due=now - timedelta(days=2), status="sent")
    _marketing(engine, [room], journey="push-first", due=now - timedelta(minutes=10))
    _marketing(engine, [room], journey="push-second", due=now - timedelta(minutes=5))
    # Customers `raced` and `ahead` have one sent and one being sent by another worker: for
    # `raced` that one is due first and takes the last slot; for `ahead` ours is due first.
    _marketing(engine, [raced, ahead], journey="push-a", due=now - timedelta(days=2), status="sent")
    _marketing(engine, [raced], journey="push-elsewhere", due=now - timedelta(minutes=20), status="sending")
    _marketing(engine, [ahead], journey="push-elsewhere", due=now - timedelta(minutes=1), status="sending")
    _marketing(engine, [raced, ahead], journey="push-ours", due=now - timedelta(minutes=10))
    with engine.begin() as conn:  # claimed just now: a live claim, not one for reconcile to take over
        table = Touch.__table__  # type: ignore[attr-defined]
        conn.execute(update(table).where(table.c.status == "sending").values(claimed_by="other-worker",
                                                                               claimed_at=now))

    with RecordingProvider().running() as provider:
        counts = asyncio.run(_run(recording_dispatcher(engine, provider)))
    rows = {(r.customer_id, r.journey_id): r for r in _touches(engine)}
    status = {key: r.status for key, r in rows.items()}
    assert status[(full, "push-c")] == "dropped" and status[(full, "renewal")] == "sent"
    assert status[(room, "push-first")] == "sent" and status[(room, "push-second")] == "dropped"
    assert status[(raced, "push-ours")] == "dropped" and status[(ahead, "push-ours")] == "sent"
    assert rows[(full, "push-c")].error_reason == "marketing_cap: marketing cap 2 per 7d reached when sending"
    assert counts.dropped == 3 and counts.sent == 3
    sent_keys = {k for k, _ in provider.accepted}
    assert {rows[(full, "push-c")].key, rows[(room, "push-second")].key, rows[(raced, "push-ours")].key}.isdisjoint(
        sent_keys)
    with engine.connect() as conn:
        dropped = conn.execute(text("SELECT count(*) FROM outcome WHERE kind = 'dropped'")).scalar()
    assert dropped == 3
    engine.dispose()


def test_cap_and_consent_are_checked_per_batch_not_per_touch(db_url: str) -> None:
    """The statements a batch runs do not grow with its size (one query for the customers, one
    for the cap, whatever the number of touches)."""
    from sqlalchemy import event

    def statements(n: int) -> int:
        engine = make_engine(db_url)
        _set(engine, "DELETE FROM outcome")
        _set(engine, "DELETE FROM touch")
        ids = make_customers(engine, n, start=n * 10)
        _marketing(engine, ids, journey=f"push-{n}", due=utcnow() - timedelta(minutes=1))
        seen: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
        with RecordingProvider().running() as provider:
            counts = asyncio.run(_run(recording_dispatcher(engine, provider, batch_size=1000, lanes=1)))
        assert counts.sent == n and counts.batches == 1
        engine.dispose()
        return len([s for s in seen if s.lstrip().upper().startswith("SELECT")])

    assert statements(3) == statements(60)


class _CustomersSeen:
    """Renders like ``PlainRenderer`` and keeps the customers each batch handed it."""

    def __init__(self) -> None:
        self.customers: list[object] = []

    def render_all(self, session, touches, customers, now):  # type: ignore[no-untyped-def]
        self.customers.extend(customers.values())
        return PlainRenderer().render_all(session, touches, customers, now)


def test_a_batch_reads_its_customers_as_rows_not_orm_objects(db_url: str) -> None:
    """A batch's customers are only read: plain rows of the columns sending and rendering use, not an
    ORM object each (identity map and instance state cost five times the row, per customer)."""
    engine = make_engine(db_url)
    ids = make_customers(engine, 5)
    make_touches(engine, ids)
    seen = _CustomersSeen()
    with RecordingProvider().running() as provider:
        adapters = {"sms": HttpAdapter("sms", provider.port)}
        counts = asyncio.run(_run(Dispatcher(engine, adapters, seen, worker_id="w1")))  # type: ignore[arg-type]
    assert counts.sent == 5 and len(seen.customers) == 5
    assert not any(isinstance(c, Customer) for c in seen.customers)
    by_id = {c.id: c for c in seen.customers}  # type: ignore[attr-defined]
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT * FROM customer ORDER BY id")).all()
    for row in stored:
        got = by_id[row.id]
        assert (got.name, got.external_id, got.phone, got.consent_sms, got.locale, got.timezone, got.anonymised_at) == (  # type: ignore[attr-defined]
            row.name, row.external_id, row.phone, bool(row.consent_sms), row.locale, row.timezone, row.anonymised_at)
    engine.dispose()


def test_the_templates_in_force_are_found_when_the_dispatcher_is_made(db_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Landing the template folders checks every template file (about half a second): done when the
    dispatcher is made, as the journeys in force are loaded, not in the first batch's time."""
    from engine.language import template_review

    looked: list[str] = []
    real = template_review.in_force_folder

    def counted(engine):  # type: ignore[no-untyped-def]
        looked.append("folder")
        return real(engine)

    monkeypatch.setattr(template_review, "in_force_folder", counted)
    engine = make_engine(db_url)
    # Sent at noon in Shanghai: at the wall clock, in the quiet hours there the touch would be held, not rendered.
    noon = datetime(2027, 3, 1, 4, 0, tzinfo=UTC)
    make_touches(engine, make_customers(engine, 1), due=noon - timedelta(minutes=1))
    with engine.begin() as conn:
        conn.execute(text("UPDATE touch SET template = 'silver_weekly_push'"))  # a shipped template: it renders
    with RecordingProvider().running() as provider:
        dispatcher = make_dispatcher(engine, {"sms": HttpAdapter("sms", provider.port)})
        assert looked == ["folder"]
        counts = asyncio.run(_run(dispatcher, now=noon))
    assert counts.sent == 1 and looked == ["folder"]  # the batch rendered with the folder found then
    engine.dispose()
