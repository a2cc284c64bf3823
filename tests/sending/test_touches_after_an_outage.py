"""The service comes back after three days down: what was due meanwhile and is too late to make sense
is dropped with its reason, not sent all at once.

``journeys run`` planned on Monday evening through Tuesday, then stopped (a crashed machine, a database
failover) until Thursday 10:30. On its return the plan run catches up on the missed window and the
dispatcher claims everything due since Tuesday. A marketing push due Tuesday 10:00 is two days late:
noise by now, dropped (marketing expires after 1d, config/delivery.yaml). A greeting whose journey says
``expire_after: 1d`` is dropped though it is a service journey. The daily service notice still goes out,
Tuesday's and Wednesday's too (service expires after 3d). Real planner and dispatcher (as the service makes
it, from the delivery settings in force) on SQLite and PostgreSQL, a real HTTP provider on loopback.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from channels.optout import record_opt_out
from engine.planning.planner import plan_ahead
from engine.sending.dispatch import make_dispatcher
from store.clock import simulated_time
from store.db import make_engine
from store.models import Customer
from store.touch_reasons import parse
from tests.dispatch_support import HttpAdapter, PlainRenderer, RecordingProvider, dispatch_until_idle
from tests.journey_support import journeys_folder

ROOT = Path(__file__).resolve().parents[2]
JOURNEY = ("id: {id}\nname: Journey {id}\ncategory: {category}\n{extra}"
           'entry: {{schedule: {{cron: "{cron}"}}}}\nreentry: {{allowed: true}}\nsteps:\n'
           "  - {{id: s0, send: {{channels: [sms], template: nps_survey}}}}\n")
MONDAY_EVENING = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # 17:00 in Shanghai: Tuesday is planned ahead
THURSDAY = datetime(2027, 3, 4, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai, three days later


def _journeys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    journeys = journeys_folder(tmp_path, monkeypatch)
    files = {
        "weekly-push": ("marketing", "0 10 * * TUE", ""),
        "greeting": ("service", "0 10 * * TUE", "expire_after: 1d\n"),
        "daily-notice": ("service", "0 10 * * *", ""),
    }
    for name, (category, cron, extra) in files.items():
        (journeys / f"{name}.yaml").write_text(JOURNEY.format(id=name, category=category, cron=cron, extra=extra),
                                               encoding="utf-8")
    return journeys


def test_what_is_too_late_after_three_days_down_is_dropped_with_its_reason(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_url = migrated_any_db
    _journeys(tmp_path, monkeypatch)
    engine = make_engine(db_url)
    made = datetime(2020, 1, 1, tzinfo=UTC)
    with Session(engine) as session:
        session.add(Customer(external_id="C1", name="Customer 1", tier="silver", timezone="Asia/Shanghai",
                             phone="+8613800000001", consent_sms=True, consent_sms_marketing=True,
                             birthday=date(1980, 6, 1), birth_md=601, created_at=made, updated_at=made))
        session.commit()

    with simulated_time(lambda: MONDAY_EVENING):
        plan_ahead(MONDAY_EVENING, start=MONDAY_EVENING, url=db_url)
    # Down until Thursday 10:30; the first tick back catches up from where the last one ended.
    with simulated_time(lambda: THURSDAY):
        plan_ahead(THURSDAY, url=db_url)
        with RecordingProvider().running() as sms:
            dispatcher = make_dispatcher(engine, {"sms": HttpAdapter("sms", sms.port)}, renderer=PlainRenderer(),
                                         worker_id="w1", clock=lambda: THURSDAY)
            counts = dispatch_until_idle(dispatcher, now=THURSDAY)

    notices = [f"1:daily-notice:s0:2027-03-0{d}T10:00" for d in (2, 3, 4)]
    assert sorted(key for key, _ in sms.accepted) == notices
    touches = _touches(engine)
    assert {key: touches[key][0] for key in notices} == dict.fromkeys(notices, "sent")
    push = touches["1:weekly-push:s0:2027-03-02T10:00"]
    greeting = touches["1:greeting:s0:2027-03-02T10:00"]
    assert push == ("dropped", "expired: due 2027-03-02 02:00 UTC, 2d30m late; marketing touches expire after 1d")
    assert greeting == ("dropped",
                        "expired: due 2027-03-02 02:00 UTC, 2d30m late; journey greeting touches expire after 1d")
    assert (counts.sent, counts.dropped) == (3, 2)
    reason = parse(push[1])
    assert reason is not None and reason.code == "expired"
    with engine.connect() as conn:
        outcomes = conn.execute(text("SELECT t.key FROM outcome o JOIN touch t ON t.id = o.touch_id "
                                     "WHERE o.kind = 'dropped'")).scalars().all()
    assert sorted(outcomes) == ["1:greeting:s0:2027-03-02T10:00", "1:weekly-push:s0:2027-03-02T10:00"]
    engine.dispose()


def _touches(engine: Engine) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, status, error_reason FROM touch"))
        return {r.key: (r.status, r.error_reason) for r in rows}


def test_an_opt_out_recorded_while_the_service_was_down_is_in_force_before_anything_old_goes_out(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Down from Monday 17:00 (Tuesday planned ahead) to Tuesday 10:30; at 09:00 the customer answered TD to a
    marketing SMS, recorded by the API meanwhile. Tuesday's push is half an hour late, not expired, and is not
    sent: the opt-out withdrew its consent; the service notice still goes out."""
    db_url = migrated_any_db
    _journeys(tmp_path, monkeypatch)
    engine = make_engine(db_url)
    made = datetime(2020, 1, 1, tzinfo=UTC)
    with Session(engine) as session:
        customer = Customer(external_id="C1", name="Customer 1", tier="silver", timezone="Asia/Shanghai",
                            phone="+8613800000001", consent_sms=True, consent_sms_marketing=True,
                            birthday=date(1980, 6, 1), birth_md=601, created_at=made, updated_at=made)
        session.add(customer)
        session.commit()
        cid = customer.id
    assert cid is not None
    with simulated_time(lambda: MONDAY_EVENING):
        plan_ahead(MONDAY_EVENING, start=MONDAY_EVENING, url=db_url)
    push = "1:weekly-push:s0:2027-03-02T10:00"
    assert _touches(engine)[push] == ("planned", None)
    td = datetime(2027, 3, 2, 1, 0, tzinfo=UTC)  # Tuesday 09:00
    with Session(engine) as session:
        assert record_opt_out(session, cid, "sms", source="reply:sms", dedup_key="td-1", at=td,
                              purpose="marketing") is not None
        session.commit()
    back = datetime(2027, 3, 2, 2, 30, tzinfo=UTC)  # Tuesday 10:30
    with simulated_time(lambda: back):
        plan_ahead(back, url=db_url)
        with RecordingProvider().running() as sms:
            dispatcher = make_dispatcher(engine, {"sms": HttpAdapter("sms", sms.port)}, renderer=PlainRenderer(),
                                         worker_id="w1", clock=lambda: back)
            dispatch_until_idle(dispatcher, now=back)
    assert sorted(key for key, _ in sms.accepted) == ["1:daily-notice:s0:2027-03-02T10:00",
                                                      "1:greeting:s0:2027-03-02T10:00"]
    assert _touches(engine)[push][0] == "cancelled"
    engine.dispose()


@pytest.mark.parametrize(("back", "sent"), [
    (datetime(2027, 3, 2, 11, 0, tzinfo=UTC), True),  # 19:00 on the birthday: 10 hours late, still the day
    (datetime(2027, 3, 2, 14, 0, tzinfo=UTC), False),  # 22:00: 13 hours late, it would go out the day after
], ids=["back the same evening", "back after 21:00"])
def test_the_shipped_birthday_greeting_is_not_sent_the_day_after(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, back: datetime, sent: bool) -> None:
    """birthday-care says ``expire_after: 12h``: a greeting due at 09:00 goes out that day or not at all. Under
    the service default (3d) the one claimed at 22:00 was held to 08:00 and wished a happy birthday a day late."""
    journeys = journeys_folder(tmp_path, monkeypatch)
    shutil.copy(ROOT / "journeys" / "birthday-care.yaml", journeys / "birthday-care.yaml")
    engine = make_engine(db_url)
    made = datetime(2020, 1, 1, tzinfo=UTC)
    with Session(engine) as session:
        session.add(Customer(external_id="C1", name="Customer 1", tier="silver", timezone="Asia/Shanghai",
                             phone="+8613800000001", consent_sms=True, birthday=date(1980, 3, 2), birth_md=302,
                             created_at=made, updated_at=made))
        session.commit()
    with simulated_time(lambda: MONDAY_EVENING):
        plan_ahead(MONDAY_EVENING, start=MONDAY_EVENING, url=db_url)
    greeting = "1:birthday-care:greeting:birthday-2027"
    assert _touches(engine)[greeting] == ("planned", None)
    # Down until ``back``; then claimed again the next morning, as the service would.
    morning = datetime(2027, 3, 3, 0, 0, tzinfo=UTC)
    with RecordingProvider().running() as sms:
        for moment in (back, morning):
            with simulated_time(lambda moment=moment: moment):  # type: ignore[misc]
                plan_ahead(moment, url=db_url)
                dispatcher = make_dispatcher(engine, {"sms": HttpAdapter("sms", sms.port)}, renderer=PlainRenderer(),
                                             worker_id="w1", clock=lambda moment=moment: moment)  # type: ignore[misc]
                dispatch_until_idle(dispatcher, now=moment)
    status, reason = _touches(engine)[greeting]
    if sent:
        assert (status, [key for key, _ in sms.accepted]) == ("sent", [greeting])
    else:
        assert (status, reason, sms.accepted) == (
            "dropped", "expired: due 2027-03-02 01:00 UTC, 13h late; journey birthday-care touches expire after 12h",
            [])
    engine.dispose()
