"""A touch the marketing cap dropped for a touch of a journey that then stops goes out after all.

``journeys run`` plans through every customer's next local day, cap and priority included. With one
marketing touch a day allowed, tomorrow's 10:00 touch of ``high`` (priority 90) wins the day and
tomorrow's 11:00 touch of ``low`` (priority 10) is dropped, pre-empted. Ops then switch ``high`` off, or
remove its file. Before, dispatch cancelled ``high``'s touch at 10:00 and
``low``'s stayed dropped: the customer got nothing, though under the files in force ``low`` goes out.
Differential: the service's ticks and dispatch over that evening and morning send what they send when
``high`` was never there. Real planner ticks and dispatcher, a real HTTP provider on loopback, on a
SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
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

DAILY = ("id: {id}\nname: Daily {id}\ncategory: marketing\npriority: {priority}\n"
         'entry: {{schedule: {{cron: "0 {hour} * * *"}}}}\nreentry: {{allowed: true}}\nsteps:\n'
         "  - {{id: s0, send: {{channels: [sms], template: nps_survey}}}}\n")
EVENING = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # 17:00 in Shanghai: tomorrow is planned ahead
UNTIL = datetime(2027, 3, 2, 5, 0, tzinfo=UTC)  # 13:00 the next day
LOW = "1:low:s0:2027-03-02T11:00"
HIGH = "1:high:s0:2027-03-02T10:00"


def _one_a_day(journeys: Path) -> None:
    delivery = Path(os.environ["JOURNEYS_CONFIG_DIR"]) / "delivery.yaml"
    lines = [line for line in delivery.read_text(encoding="utf-8").splitlines()
             if not line.startswith(("marketing_cap:", "marketing_cap_window:"))]
    delivery.write_text("\n".join([*lines, "marketing_cap: 1", 'marketing_cap_window: "1d"', ""]), encoding="utf-8")


def _journey(journeys: Path, name: str, priority: int, hour: int) -> None:
    (journeys / f"{name}.yaml").write_text(DAILY.format(id=name, priority=priority, hour=hour), encoding="utf-8")


def _same(moment: datetime) -> datetime:
    return moment


def _service(url: str, before_tick: Callable[[datetime], None] | None = None, **planning: Any) -> list[str]:
    """The service's ticks every 30 minutes from the evening on, each followed by dispatch: the keys sent.
    ``before_tick``: what ops do before the tick at that moment; ``planning``: how the ticks plan
    (``workers``, ``chunk``)."""
    engine = make_engine(url)
    at = EVENING
    with RecordingProvider().running() as sms:
        dispatcher = Dispatcher(engine, {"sms": HttpAdapter("sms", sms.port)}, PlainRenderer(), worker_id="w1",
                                journey_rules=InForceRules(engine))
        while at < UNTIL:
            at += timedelta(minutes=30)
            if before_tick is not None:
                before_tick(at)
            with simulated_time(functools.partial(_same, at)):
                plan_ahead(at, url=url, **planning)
            dispatch_until_idle(dispatcher, now=at)
    engine.dispose()
    return [key for key, _ in sms.accepted if "2027-03-02" in key]


def _switch(url: str, enabled: bool, at: datetime = EVENING) -> None:
    """Ops switch ``high`` off (or on again) in the console."""
    engine = make_engine(url)
    with Session(engine) as session:
        row = session.get(KeyValue, f"{ENABLED_PREFIX}high")
        value = {"enabled": enabled, "by": "ops"}
        if row is None:
            session.add(KeyValue(key=f"{ENABLED_PREFIX}high", value=value, updated_at=at))
        else:
            row.value, row.updated_at = value, at
        session.commit()
    engine.dispose()


def _touches(url: str) -> dict[str, tuple[str, str | None]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, status, error_reason FROM touch WHERE key LIKE '%2027-03-02%'"))
        found = {r.key: (r.status, r.error_reason) for r in rows}
    engine.dispose()
    return found


def _evening(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, with_high: bool = True) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    journeys = journeys_folder(tmp_path, monkeypatch)
    _one_a_day(journeys)
    _journey(journeys, "low", 10, 11)
    if with_high:
        _journey(journeys, "high", 90, 10)
    engine = make_engine(url)
    sms_and_wechat_customer(engine)
    engine.dispose()
    with simulated_time(lambda: EVENING):
        plan_ahead(EVENING, start=EVENING, url=url)
    return journeys


# (``enabled: false`` in a marketing journey's file waits for review: the version in force still runs.)
@pytest.mark.parametrize("how", ["switched off", "file removed"])
def test_a_touch_dropped_for_a_journey_that_then_stops_goes_out(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    url = migrated_any_db
    journeys = _evening(url, tmp_path / "stops", monkeypatch)
    assert _touches(url) == {HIGH: ("planned", None), LOW: ("dropped", "pre_empted: pre-empted by high")}

    if how == "switched off":
        _switch(url, False)
    else:
        (journeys / "high.yaml").unlink()

    sent = _service(url)
    assert sent == [LOW]
    touches = _touches(url)
    assert touches[LOW] == ("sent", None)
    assert touches[HIGH][0] == "cancelled"


def test_the_same_sends_as_when_the_journey_was_never_there(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Differential: switched off after planning ahead, or never in force (on a SQLite file of its own),
    the customer gets the same."""
    from store.migrate import upgrade

    stopped_url, never_url = migrated_any_db, f"sqlite:///{tmp_path / 'never.db'}"
    upgrade(never_url)
    _evening(stopped_url, tmp_path / "stopped", monkeypatch)
    _switch(stopped_url, False)
    stopped = _service(stopped_url)

    _evening(never_url, tmp_path / "never", monkeypatch, with_high=False)
    never = _service(never_url)
    assert stopped == never == [LOW]


def test_while_the_journey_runs_its_touch_keeps_the_day(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = migrated_any_db
    _evening(url, tmp_path, monkeypatch)
    assert _service(url) == [HIGH]
    assert _touches(url)[LOW] == ("dropped", "pre_empted: pre-empted by high")


# Two processes: the book's chunks planned by worker processes, the contests run again by the run that
# cut them (as on the scaled-out Prefect workers, engine.runtime.plan_slices).
@pytest.mark.parametrize("planning", [{}, {"workers": 2, "chunk": 2}], ids=["one process", "two processes"])
def test_customers_are_decided_again_in_batches(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planning: dict[str, int]) -> None:
    """Five customers, contests run again two customers at a time (a book's thousands, a statement's limits):
    each gets the touch the stopped journey kept out."""
    from datetime import date

    from engine.planning import cap_again
    from store.models import Customer

    monkeypatch.setattr(cap_again, "BATCH", 2)
    engine = make_engine(db_url)
    made = datetime(2020, 1, 1, tzinfo=UTC)
    with Session(engine) as session:
        for n in range(2, 6):
            session.add(Customer(external_id=f"C{n}", name=f"Customer {n}", tier="silver", timezone="Asia/Shanghai",
                                 phone=f"+861380000000{n}", consent_sms=True, birthday=date(1980, 6, 1), birth_md=601,
                                 created_at=made, updated_at=made))
        session.commit()
    engine.dispose()
    _evening(db_url, tmp_path, monkeypatch)
    _switch(db_url, False)
    assert sorted(_service(db_url, **planning)) == sorted(f"{n}:low:s0:2027-03-02T11:00" for n in range(1, 6))


def test_switched_on_again_before_its_touch_it_takes_its_place_back(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Off at 17:00, on again at 19:00 (Shanghai), before its touch: ``low`` had been let in meanwhile; now
    ``high`` goes out alone, as if it had never been off. The cap allows one a day, never two."""
    url = migrated_any_db
    _evening(url, tmp_path, monkeypatch)
    _switch(url, False)

    def ops(at: datetime) -> None:
        if at == EVENING + timedelta(hours=2):
            _switch(url, True, at)
            assert _touches(url)[LOW] == ("planned", None)  # let in while ``high`` was off

    assert _service(url, ops) == [HIGH]
    assert _touches(url)[LOW] == ("dropped", "pre_empted: pre-empted by high")


def _statements(url: str, at: datetime) -> list[str]:
    """The SQL a plan tick at ``at`` sends that reads or writes touches."""
    from sqlalchemy import event

    from store.db import get_engine

    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "touch" in statement:
            seen.append(statement)

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", record)
    try:
        with simulated_time(functools.partial(_same, at)):
            plan_ahead(at, url=url)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_a_stop_is_dealt_with_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Differential: once the tick after the stop has run the contests again, a tick with nothing due
    reads no more touches than the same tick where no journey ever stopped; a journey switched off
    months ago costs the five-minute tick nothing."""
    from store.migrate import upgrade

    books = {}
    for name in ("stopped", "running"):
        url = f"sqlite:///{tmp_path / (name + '.db')}"
        upgrade(url)
        _evening(url, tmp_path / name, monkeypatch)
        if name == "stopped":
            _switch(url, False)
        _statements(url, EVENING + timedelta(minutes=5))
        books[name] = _statements(url, EVENING + timedelta(minutes=10))
    assert books["stopped"] == books["running"]
