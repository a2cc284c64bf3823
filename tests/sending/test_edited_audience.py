"""An edit of who enters a journey, or when, governs the entries planned ahead of it too.

``journeys run`` judges a scheduled entry ahead of its moment (through every customer's next local day),
so at 17:00 tomorrow's 10:00 entries are stored, with their touches, under today's file. Ops then narrow
the audience, widen it, change its condition or move the schedule. The file in force at the entry's moment
decides who enters and when (``engine.language.journey_edits``): a customer the edited file leaves out gets
nothing, one it takes in gets what it says, and a moved schedule fires at its new time only.

The first check is differential, as ``test_edited_journey``'s: the service's ticks (plan ahead, dispatch)
against each moment decided when it comes under the file in force then, on SQLite files, with a real HTTP
provider on loopback. The second follows one narrowed audience through the service's ticks and dispatch
on SQLite and PostgreSQL (the take-back is SQL of its own on each).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.planning.planner import plan_ahead
from store.clock import simulated_time
from store.db import make_engine
from store.models import Customer
from tests.dispatch_support import RecordingProvider
from tests.journey_support import journeys_folder
from tests.sending.test_edited_journey import EDIT_MOMENTS, EVENING, TICKS, _dispatch, _run, _sent

SOURCE = ("id: {id}\nname: Care\ncategory: service\naudience: {{tiers: [{tiers}]{when}}}\n"
          'entry: {{schedule: {{cron: "0 {hour} * * *"}}}}\nreentry: {{allowed: true}}\nsteps:\n'
          "  - {{id: s0, send: {{channels: [sms], template: nps_survey}}}}\n  - {{id: w, wait: 2h}}\n"
          "  - {{id: s1, send: {{channels: [sms], template: churn_we_miss_you}}}}\n")
FIRST = {"tiers": "silver, gold", "when": "", "hour": "10"}
SHANGHAI = ", when: {field: customer.timezone, op: eq, value: Asia/Shanghai}"
# Each kind of edit: the file before and after.
EDITS = {
    "tiers narrowed": (FIRST, {**FIRST, "tiers": "gold"}),
    "tiers widened": ({**FIRST, "tiers": "gold"}, FIRST),
    "condition changed": ({**FIRST, "when": SHANGHAI}, {**FIRST, "when": SHANGHAI.replace("Shanghai", "Kolkata")}),
    "schedule moved": (FIRST, {**FIRST, "hour": "11"}),
}
CUSTOMERS = (("silver", "Asia/Shanghai"), ("silver", "Asia/Kolkata"),
             ("gold", "Asia/Shanghai"), ("gold", "Asia/Kolkata"))


def _write(folder: Path, edited: bool) -> None:
    """One journey per kind of edit, all edited at the same moment: ``care-tiers-narrowed``, ..."""
    for kind, files in EDITS.items():
        journey_id = "care-" + kind.replace(" ", "-")
        (folder / f"{journey_id}.yaml").write_text(SOURCE.format(id=journey_id, **files[edited]), encoding="utf-8")


def _book(url: str) -> Engine:
    """Customers 1-4: silver in Shanghai and Kolkata, gold in Shanghai and Kolkata."""
    engine = make_engine(url)
    made = datetime(2020, 1, 1, tzinfo=UTC)
    with Session(engine) as session:
        for n, (tier, zone) in enumerate(CUSTOMERS, 1):
            session.add(Customer(external_id=f"C{n}", name=f"Customer {n}", tier=tier, timezone=zone,
                                 phone=f"+861380000000{n}", consent_sms=True, birthday=date(1980, 6, 1),
                                 birth_md=601, created_at=made, updated_at=made))
        session.commit()
    return engine


@pytest.mark.parametrize("edit_at", list(EDIT_MOMENTS.values()), ids=list(EDIT_MOMENTS))
def test_an_edit_of_the_audience_or_schedule_governs_the_entries_planned_ahead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit_at: datetime) -> None:
    folder = journeys_folder(tmp_path, monkeypatch)
    with RecordingProvider().running() as sms:
        service = _run(f"sqlite:///{tmp_path / 'service.db'}", folder, edit_at, True, sms.port, _write, _book)
        reference = _run(f"sqlite:///{tmp_path / 'reference.db'}", folder, edit_at, False, sms.port, _write, _book)
    sent = _sent(service)
    assert sent == _sent(reference)
    # Not an agreement over nothing: each journey sent to someone, and each edit changed who (or when) for
    # a customer whose entry had been planned ahead of the edit (Kolkata's come last).
    assert {j for _, j, *_ in sent} == {"care-" + k.replace(" ", "-") for k in EDITS}
    assert {(c, o) for c, j, _, o, *_ in sent if j == "care-schedule-moved"} >= {(2, "2027-03-02T11:00")}
    assert not {c for c, j, *_ in sent if j == "care-tiers-narrowed"} & {2}
    assert {c for c, j, *_ in sent if j == "care-tiers-widened"} >= {2}
    service.dispose()
    reference.dispose()


def test_a_customer_the_narrowed_audience_leaves_out_is_sent_nothing_planned_ahead(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planned at 17:00 for tomorrow's 10:00 under [silver, gold]; the evening's edit keeps gold only. The
    service's ticks then send the gold customers their two messages, once each, and the silver ones nothing;
    the silver customers' entries are gone, not left waiting, and their touches are withdrawn."""
    folder = journeys_folder(tmp_path, monkeypatch)
    journey = folder / "care.yaml"
    journey.write_text(SOURCE.format(id="care", **FIRST), encoding="utf-8")
    engine = _book(migrated_any_db)
    with RecordingProvider().running() as sms:
        for i, tick in enumerate(TICKS):
            if tick == TICKS[1]:
                journey.write_text(SOURCE.format(id="care", **EDITS["tiers narrowed"][1]), encoding="utf-8")
            with simulated_time(lambda tick=tick: tick):
                plan_ahead(tick, start=EVENING if i == 0 else None, url=migrated_any_db)
                _dispatch(engine, sms.port, tick)
        assert sorted(key for key, _ in sms.accepted) == [
            f"{c}:care:{s}:2027-03-02T10:00" for c in (3, 4) for s in ("s0", "s1")]
    with engine.connect() as conn:
        enrolled = conn.execute(text("SELECT customer_id, journey_version FROM enrollment WHERE occurrence = "
                                     "'2027-03-02T10:00' ORDER BY customer_id")).all()
        withdrawn = conn.execute(text("SELECT customer_id, count(*) FROM touch WHERE status = 'cancelled' "
                                      "AND key LIKE '%~%' AND occurrence = '2027-03-02T10:00' "
                                      "GROUP BY customer_id ORDER BY customer_id")).all()
    assert [c for c, _ in enrolled] == [3, 4] and len({v for _, v in enrolled}) == 1
    assert [tuple(r) for r in withdrawn] == [(c, 2) for c in (1, 2, 3, 4)]
    engine.dispose()
