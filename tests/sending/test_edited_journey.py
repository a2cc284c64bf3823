"""A journey edited after ``journeys run`` planned its touches ahead does what the edited file says.

The service's ticks plan through every customer's next local day, so at 17:00 tomorrow's 10:00 and 12:00
touches are already stored, decided under today's file. Ops then change a template, remove a step or
lengthen a wait. The file in force at a touch's moment decides (``engine.language.journey_edits``).

The check is differential: the same ticks and the same edit at the same moment, once the way the service
runs (``plan_ahead`` and dispatch at every tick) and once with no planning ahead at all (each step decided
at its moment, under the file in force then, which is what the file says by construction). What was sent
(which step, template, channel, when) must agree. Real planner and dispatcher on SQLite files, a real HTTP
provider on loopback. A second test follows one edit through dispatch alone (the edit landed by the
dispatcher before any plan run came round) on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.planning.planner import plan, plan_ahead
from engine.sending.dispatch import Dispatcher
from engine.sending.journey_rules import InForceRules
from store.clock import simulated_time
from store.db import make_engine
from store.migrate import upgrade
from store.models import Customer
from tests.dispatch_support import HttpAdapter, PlainRenderer, RecordingProvider, dispatch_until_idle
from tests.journey_support import journeys_folder

ROOT = Path(__file__).resolve().parents[2]
HEAD = ('id: {id}\nname: Care\ncategory: service\nentry: {schedule: {cron: "0 10 * * *"}}\n'
        "reentry: {allowed: true}\nsteps:\n")
STEPS = {
    "s0": "  - {{id: s0, send: {{channels: [sms], template: {t0}}}}}\n",
    "w": "  - {{id: w, wait: {wait}}}\n",
    "s1": "  - {{id: s1, send: {{channels: [sms], template: {t1}}}}}\n",
}
FIRST = {"t0": "nps_survey", "t1": "churn_we_miss_you", "wait": "2h", "steps": ("s0", "w", "s1")}
EDITS = {
    "template": {**FIRST, "t0": "callback_missed", "t1": "complaint_followup"},
    "step removed": {**FIRST, "steps": ("s0", "w")},
    "wait lengthened": {**FIRST, "wait": "3h"},
}
EVENING = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # 17:00 in Shanghai: tomorrow is planned ahead
EDIT_MOMENTS = {
    "the evening before": datetime(2027, 3, 1, 12, 0, tzinfo=UTC),
    "a minute before the first send": datetime(2027, 3, 2, 1, 59, tzinfo=UTC),
    "between the two sends": datetime(2027, 3, 2, 2, 15, tzinfo=UTC),
    "after Shanghai's sends, before Kolkata's": datetime(2027, 3, 2, 4, 10, tzinfo=UTC),
}
# Ticks at and after the sends of 2 March: 10:00, 12:00 and 13:00 in Shanghai (02:00, 04:00, 05:00 UTC) and
# in Kolkata (04:30, 06:30, 07:30 UTC).
TICKS = [EVENING] + [datetime(2027, 3, 2, h, m, tzinfo=UTC) for h, m in (
    (1, 55), (2, 0), (2, 5), (4, 0), (4, 5), (4, 30), (4, 35), (5, 0), (5, 5), (6, 30), (6, 35), (7, 30), (7, 35))]


def _source(version: dict[str, object], journey_id: str = "care") -> str:
    return HEAD.replace("{id}", journey_id) + "".join(
        STEPS[s].format(**version) for s in version["steps"])  # type: ignore[attr-defined]


def _write(folder: Path, edited: bool) -> None:
    """One journey per kind of edit, all edited at the same moment: ``care-template``, ``care-step-removed``, ..."""
    for kind, edit in EDITS.items():
        journey_id = "care-" + kind.replace(" ", "-")
        (folder / f"{journey_id}.yaml").write_text(_source(edit if edited else FIRST, journey_id), encoding="utf-8")


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return journeys_folder(tmp_path, monkeypatch) / "care.yaml"


def _book(url: str) -> Engine:
    engine = make_engine(url)
    made = datetime(2020, 1, 1, tzinfo=UTC)
    with Session(engine) as session:
        for n, zone in ((1, "Asia/Shanghai"), (2, "Asia/Kolkata")):
            session.add(Customer(external_id=f"C{n}", name=f"Customer {n}", tier="silver", timezone=zone,
                                 phone=f"+861380000000{n}", consent_sms=True, birthday=date(1980, 6, 1),
                                 birth_md=601, created_at=made, updated_at=made))
        session.commit()
    return engine


def _dispatch(engine: Engine, port: int, now: datetime) -> None:
    dispatcher = Dispatcher(engine, {"sms": HttpAdapter("sms", port)}, PlainRenderer(), worker_id="w1",
                            journey_rules=InForceRules(engine))
    dispatch_until_idle(dispatcher, now=now)


def _sent(engine: Engine) -> set[tuple[int, str, str, str, str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT customer_id, journey_id, step_id, occurrence, template, channel, sent_at "
                                 "FROM touch WHERE status = 'sent'")).all()
    return {(r.customer_id, r.journey_id, r.step_id, r.occurrence, r.template, r.channel, str(r.sent_at)[:16])
            for r in rows}


def _run(url: str, folder: Path, edit_at: datetime, ahead: bool, port: int,
         write: Callable[[Path, bool], None] = _write, book: Callable[[str], Engine] = _book) -> Engine:
    """The ticks from the evening before, with the journeys ``write`` puts in ``folder`` edited at ``edit_at``:
    the service's way (``plan_ahead``) or the reference's (each moment decided when it comes)."""
    upgrade(url)
    engine = book(url)
    write(folder, False)
    edited = False
    for i, tick in enumerate(sorted({*TICKS, edit_at})):
        if tick >= edit_at and not edited:
            write(folder, True)
            edited = True
        with simulated_time(lambda tick=tick: tick):
            start = EVENING if i == 0 else None
            if ahead:
                plan_ahead(tick, start=start, url=url)
            else:
                plan(tick, start=start, url=url)
            _dispatch(engine, port, tick)
    return engine


@pytest.mark.parametrize("edit_at", list(EDIT_MOMENTS.values()), ids=list(EDIT_MOMENTS))
def test_an_edit_does_what_the_file_in_force_at_each_moment_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit_at: datetime) -> None:
    folder = _setup(tmp_path, monkeypatch).parent
    with RecordingProvider().running() as sms:
        service = _run(f"sqlite:///{tmp_path / 'service.db'}", folder, edit_at, True, sms.port)
        reference = _run(f"sqlite:///{tmp_path / 'reference.db'}", folder, edit_at, False, sms.port)
    sent = _sent(service)
    assert sent == _sent(reference)
    # Every customer got something of every journey: the runs did send, the agreement is not over nothing.
    assert {(c, j) for c, j, *_ in sent} == {(c, "care-" + k.replace(" ", "-")) for c in (1, 2) for k in EDITS}
    with service.connect() as conn:
        # Nothing went out twice, and every withdrawn touch kept its history under a freed key.
        assert conn.execute(text("SELECT count(*) FROM touch WHERE status = 'sent'")).scalar() == len(sent)
        withdrawn = conn.execute(text("SELECT key, error_reason FROM touch WHERE key LIKE '%~%'")).all()
    assert all(r.error_reason.endswith(" edited: planned again under the version in force") for r in withdrawn)
    assert withdrawn  # every edit moment falls before a touch planned ahead under the first file
    service.dispose()
    reference.dispose()


def test_a_touch_claimed_before_any_plan_run_saw_the_edit_is_planned_again(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatcher lands the edit (its batches read the journeys in force) at 09:30, before the planner's
    next tick; at 10:01 it claims the touch planned yesterday under the old file and does not send it. The
    next tick plans the step again under the new file, and that is what goes out."""
    file = _setup(tmp_path, monkeypatch)
    file.write_text(_source(FIRST), encoding="utf-8")
    engine = _book(migrated_any_db)
    with simulated_time(lambda: EVENING):
        plan_ahead(EVENING, start=EVENING, url=migrated_any_db)
    file.write_text(_source(EDITS["template"]), encoding="utf-8")
    landing = datetime(2027, 3, 2, 1, 30, tzinfo=UTC)
    morning = datetime(2027, 3, 2, 2, 1, tzinfo=UTC)
    with RecordingProvider().running() as sms:
        with simulated_time(lambda: landing):
            InForceRules(engine)()  # what every dispatch batch asks first: it lands the edited file
        with simulated_time(lambda: morning):
            _dispatch(engine, sms.port, morning)
            assert sms.accepted == []
            with engine.connect() as conn:
                status = {r.step_id: (r.status, r.key.split("~")[0], "~" in r.key) for r in conn.execute(
                    text("SELECT step_id, status, key FROM touch WHERE customer_id = 1"))}
            # The claimed one is withdrawn by dispatch; the later one waits for the plan run.
            assert status == {"s0": ("cancelled", "1:care:s0:2027-03-02T10:00", True),
                              "s1": ("planned", "1:care:s1:2027-03-02T10:00", False)}
            plan_ahead(morning, url=migrated_any_db)
            _dispatch(engine, sms.port, morning + timedelta(minutes=1))
    sent = {(c, step, template) for c, _, step, _, template, *_ in _sent(engine)}
    assert (1, "s0", "callback_missed") in sent
    assert (1, "s0", "nps_survey") not in sent
    engine.dispose()


def test_touches_of_a_journey_whose_file_was_removed_are_not_sent(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A journey file deleted after tomorrow was planned ahead: no file in force says to send its touches."""
    file = _setup(tmp_path, monkeypatch)
    file.write_text(_source(FIRST), encoding="utf-8")
    (file.parent / "stays.yaml").write_text(_source(FIRST, "stays"), encoding="utf-8")
    engine = _book(db_url)
    with simulated_time(lambda: EVENING):
        plan_ahead(EVENING, start=EVENING, url=db_url)
    file.unlink()
    morning = datetime(2027, 3, 2, 2, 1, tzinfo=UTC)
    with RecordingProvider().running() as sms, simulated_time(lambda: morning):
        _dispatch(engine, sms.port, morning)
    assert [key for key, _ in sms.accepted] == ["1:stays:s0:2027-03-02T10:00"]
    with engine.connect() as conn:
        gone = conn.execute(text("SELECT status, error_reason FROM touch WHERE key = :k"),
                            {"k": "1:care:s0:2027-03-02T10:00"}).one()
    assert tuple(gone) == ("cancelled", "journey care no longer in force")
    engine.dispose()
