"""Two dispatchers (worker ids w1 and w2) withdrawing the touches of one edit at once, on PostgreSQL.

Tomorrow's 10:00 and 12:00 touches of 40 customers were planned ahead under the first file; the template
edit lands before any plan run sees it, and at 12:01 both dispatchers claim the old touches in small batches,
in two threads, each withdrawing what it claimed and taking the enrollments back (``journey_edits.withdraw``:
a guarded UPDATE of each touch, and an enrollment moved back only, never forward). However their batches
interleave, the next plan run must plan each step once under the version in force and the customers get the
edited messages once each, none of the old ones. A race (an enrollment taken back twice or to the later
step, a touch withdrawn twice, a step planned twice) fails the counts.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from engine.planning.planner import plan_ahead
from engine.sending.dispatch import Dispatcher
from engine.sending.journey_rules import InForceRules
from store.clock import simulated_time
from store.db import make_engine
from store.migrate import upgrade
from store.models import Customer
from tests.dispatch_support import HttpAdapter, PlainRenderer, RecordingProvider, dispatch_until_idle
from tests.journey_support import journeys_folder, sms_and_wechat_customer
from tests.sending.test_edited_journey import EDITS, EVENING, FIRST, _source

N = 40
# Two sends at one moment: one dispatcher may withdraw a customer's first while the other withdraws the second.
BACK_TO_BACK = {**FIRST, "steps": ("s0", "s1")}


@pytest.mark.postgres
def test_two_dispatchers_withdrawing_one_edit_at_once_send_each_edited_step_once(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upgrade(pg_url)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", pg_url)
    postgres_url = pg_url
    file = journeys_folder(tmp_path, monkeypatch) / "care.yaml"
    file.write_text(_source(BACK_TO_BACK), encoding="utf-8")
    engine = make_engine(postgres_url)
    made = datetime(2020, 1, 1, tzinfo=UTC)
    with Session(engine) as session:
        session.add_all(Customer(external_id=f"C{n}", name=f"Customer {n}", tier="silver", timezone="Asia/Shanghai",
                                 phone=f"+8613800{n:06d}", consent_sms=True, birthday=date(1980, 6, 1), birth_md=601,
                                 created_at=made, updated_at=made) for n in range(N))
        session.commit()
    with simulated_time(lambda: EVENING):
        plan_ahead(EVENING, start=EVENING, url=postgres_url)
    file.write_text(_source({**EDITS["template"], "steps": BACK_TO_BACK["steps"]}), encoding="utf-8")
    noon = datetime(2027, 3, 2, 4, 1, tzinfo=UTC)  # 12:01 in Shanghai: both old touches are due
    with simulated_time(lambda: datetime(2027, 3, 2, 1, 30, tzinfo=UTC)):
        InForceRules(engine)()  # the edit lands at 09:30, before the first touch's moment and any plan run
    with RecordingProvider().running() as sms, simulated_time(lambda: noon):
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def work(worker: str) -> None:
            try:
                dispatcher = Dispatcher(engine, {"sms": HttpAdapter("sms", sms.port)}, PlainRenderer(),
                                        worker_id=worker, batch_size=1, journey_rules=InForceRules(engine))
                start.wait()
                dispatch_until_idle(dispatcher, now=noon)
            except BaseException as exc:  # reported by the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in ("w1", "w2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sms.accepted == []  # every old touch withdrawn, none sent
        with engine.connect() as conn:
            withdrawn = conn.execute(text("SELECT count(*) FROM touch WHERE key LIKE '%~%'")).scalar_one()
            back = conn.execute(text("SELECT state, step_id, count(*) FROM enrollment WHERE occurrence = "
                                     "'2027-03-02T10:00' GROUP BY state, step_id")).all()
        assert withdrawn == 2 * N
        # Each enrollment back at its first step, whichever dispatcher withdrew which of its touches first.
        assert [tuple(r) for r in back] == [("waiting", "s0", N)]
        for moment in (noon, noon + timedelta(minutes=5)):
            with simulated_time(lambda moment=moment: moment):
                plan_ahead(moment, url=postgres_url)
                dispatch_until_idle(Dispatcher(engine, {"sms": HttpAdapter("sms", sms.port)}, PlainRenderer(),
                                               worker_id="w1", journey_rules=InForceRules(engine)), now=moment)
        keys = sorted(key for key, _ in sms.accepted)
    assert keys == sorted(f"{c}:care:{s}:2027-03-02T10:00" for c in range(1, N + 1) for s in ("s0", "s1"))
    with engine.connect() as conn:
        sent = {t: n for t, n in conn.execute(
            text("SELECT template, count(*) FROM touch WHERE status = 'sent' GROUP BY template"))}
    assert sent == {"callback_missed": N, "complaint_followup": N}
    engine.dispose()


def test_a_wechat_and_an_sms_dispatcher_withdrawing_one_enrollment_in_turn_send_both_edited_steps(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same in a fixed order: a WeChat message and an SMS at one moment, a dispatcher for each channel
    (w-sms, w-wechat). The SMS one withdraws the second step first; the WeChat one then withdraws the first,
    and the enrollment must go back to it (it once stayed at the second, and the first was never sent)."""
    file = journeys_folder(tmp_path, monkeypatch) / "care.yaml"
    both = ("  - {id: s0, send: {channels: [wechat], template: %s}}\n"
            "  - {id: s1, send: {channels: [sms], template: %s}}\n")
    head = _source({**FIRST, "steps": ()})
    file.write_text(head + both % ("nps_survey", "churn_we_miss_you"), encoding="utf-8")
    engine = make_engine(migrated_any_db)
    sms_and_wechat_customer(engine)
    with simulated_time(lambda: EVENING):
        plan_ahead(EVENING, start=EVENING, url=migrated_any_db)
    file.write_text(head + both % ("callback_missed", "complaint_followup"), encoding="utf-8")
    with simulated_time(lambda: datetime(2027, 3, 2, 1, 30, tzinfo=UTC)):
        InForceRules(engine)()
    morning = datetime(2027, 3, 2, 2, 1, tzinfo=UTC)
    with RecordingProvider().running() as provider, simulated_time(lambda: morning):
        for channel in ("sms", "wechat"):
            dispatch_until_idle(Dispatcher(engine, {channel: HttpAdapter(channel, provider.port)}, PlainRenderer(),
                                           worker_id=f"w-{channel}", journey_rules=InForceRules(engine)), now=morning)
        with engine.connect() as conn:
            assert tuple(conn.execute(text("SELECT state, step_id FROM enrollment")).one()) == ("waiting", "s0")
        plan_ahead(morning, url=migrated_any_db)
        adapters = {c: HttpAdapter(c, provider.port) for c in ("sms", "wechat")}
        dispatch_until_idle(Dispatcher(engine, adapters, PlainRenderer(), worker_id="w-sms",
                                       journey_rules=InForceRules(engine)), now=morning)
    with engine.connect() as conn:
        sent = sorted(tuple(r) for r in conn.execute(text("SELECT step_id, template FROM touch WHERE status = 'sent'")))
    assert sent == [("s0", "callback_missed"), ("s1", "complaint_followup")]
    engine.dispose()
