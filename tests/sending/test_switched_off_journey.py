"""A journey switched off after ``journeys run`` planned its touches ahead sends none of them.

The service's ticks plan through every customer's next local day: at 17:00 tomorrow's 10:00 touch is
already stored. Ops then set ``enabled: false`` in the file, or dynamic adjustment switches the journey
off (KeyValue ``journey_enabled:<id>``). At 10:00 the dispatcher of the service (the journeys in force
read per batch) must not send it: the file says the journey does not run. It is cancelled, with the
reason, and no other channel is tried; a touch of a journey still running goes out in the same batch.
Real planner and dispatcher on a SQLite file, a real HTTP provider on loopback.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.language.journey_switches import ENABLED_PREFIX
from engine.planning.planner import plan_ahead
from engine.sending.dispatch import Dispatcher
from engine.sending.journey_rules import InForceRules
from store.clock import simulated_time
from store.db import make_engine
from store.models import KeyValue
from tests.dispatch_support import HttpAdapter, PlainRenderer, RecordingProvider, dispatch_until_idle
from tests.journey_support import journeys_folder, sms_and_wechat_customer

ROOT = Path(__file__).resolve().parents[2]
DAILY = ("id: {id}\nname: Daily {id}\ncategory: service\n{enabled}"
         'entry: {{schedule: {{cron: "0 10 * * *"}}}}\nreentry: {{allowed: true}}\nsteps:\n'
         "  - {{id: s0, send: {{channels: [sms, wechat], template: nps_survey}}}}\n")
EVENING = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # 17:00 in Shanghai: tomorrow is planned ahead
MORNING = datetime(2027, 3, 2, 2, 1, tzinfo=UTC)  # 10:01 the next day


@pytest.mark.parametrize("how", ["file", "switch"], ids=["enabled: false in the file", "switched off"])
def test_touches_planned_ahead_of_a_journey_switched_off_are_not_sent(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    journeys = journeys_folder(tmp_path, monkeypatch)
    for name in ("stops", "goes_on"):
        (journeys / f"{name}.yaml").write_text(DAILY.format(id=name, enabled=""), encoding="utf-8")
    engine = make_engine(db_url)
    sms_and_wechat_customer(engine)

    with simulated_time(lambda: EVENING):
        plan_ahead(EVENING, start=EVENING, url=db_url)
    tomorrow = {"stops": "1:stops:s0:2027-03-02T10:00", "goes_on": "1:goes_on:s0:2027-03-02T10:00"}
    assert _touches(engine) == {key: ("planned", "sms", None) for key in tomorrow.values()}

    if how == "file":
        (journeys / "stops.yaml").write_text(DAILY.format(id="stops", enabled="enabled: false\n"), encoding="utf-8")
    else:
        with Session(engine) as session:
            session.add(KeyValue(key=f"{ENABLED_PREFIX}stops", value={"enabled": False, "by": "tier_review"},
                                    updated_at=EVENING))
            session.commit()

    with RecordingProvider().running() as sms, RecordingProvider().running() as wechat:
        dispatcher = Dispatcher(engine, {"sms": HttpAdapter("sms", sms.port),
                                         "wechat": HttpAdapter("wechat", wechat.port)},
                                PlainRenderer(), worker_id="w1", journey_rules=InForceRules(engine))
        counts = dispatch_until_idle(dispatcher, now=MORNING)
    assert [key for key, _ in sms.accepted] == [tomorrow["goes_on"]]
    assert wechat.accepted == []
    assert _touches(engine) == {tomorrow["goes_on"]: ("sent", "sms", None),
                                tomorrow["stops"]: ("cancelled", "sms", "journey stops switched off")}
    assert counts.cancelled == 1
    engine.dispose()


def _touches(engine: Engine) -> dict[str, tuple[str, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, status, channel, error_reason FROM touch WHERE key LIKE '%2027-03-02%'"))
        return {r.key: (r.status, r.channel, r.error_reason) for r in rows}
