"""A customer or policy imported after the ticks have planned Monday ahead gets what the journeys say on Monday.

``journeys run`` plans through every customer's next local day, so by Sunday noon Monday 10:00's weekly
push has been judged for the book as it is. Before, a customer imported on Sunday at 15:00 was never judged
for it (each later tick judges only the window after the last one's end) and got nothing; a policy imported
then with its renewal reminder due on Monday was missed the same way. Differential: the service's ticks
(every 30 minutes, dispatch after each), with the real CSV import between two of them, send what they send
when the customer or policy was in the book from the start. A real HTTP provider on loopback, on a SQLite
file and on PostgreSQL, planned in one process and in two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from engine.planning.planner import plan_ahead
from store.clock import simulated_time
from store.db import make_engine
from store.importing import import_csv
from store.models import Customer
from tests.dispatch_support import service_sends
from tests.journey_support import journeys_folder

WEEKLY = ("id: silver-push\nname: Weekly silver\ncategory: marketing\naudience: {tiers: [silver]}\n"
          'entry: {schedule: {cron: "0 10 * * MON"}}\nreentry: {allowed: true}\nsteps:\n'
          "  - {id: s0, send: {channels: [sms], template: silver_weekly_push}}\n")
RENEWAL = ("id: renew\nname: Renewal\ncategory: service\n"
           'entry: {date: {anchor: policy.expiry_date, offset: -30d, at: "10:00"}}\nsteps:\n'
           "  - {id: s0, send: {channels: [sms], template: silver_weekly_push}}\n")
SUNDAY = datetime(2027, 3, 7, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: Monday is planned ahead
IMPORT = datetime(2027, 3, 7, 7, 0, tzinfo=UTC)  # Sunday 15:00
UNTIL = datetime(2027, 3, 8, 4, 0, tzinfo=UTC)  # Monday 12:00
CUSTOMER = "external_id,name,phone,tier,timezone,consent_sms\nC2,Customer 2,13800000002,silver,Asia/Shanghai,true\n"
# Expires 30 days after Monday 8 March: its reminder is due on Monday at 10:00.
POLICY = ("external_id,customer_external_id,product_line,annual_premium,start_date,expiry_date\n"
          "P1,C1,health,5000,2026-04-07,2027-04-07\n")


def _book(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both journeys, and customer C1 (silver, no policy)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    journeys = journeys_folder(tmp_path, monkeypatch)
    (journeys / "silver-push.yaml").write_text(WEEKLY, encoding="utf-8")
    (journeys / "renew.yaml").write_text(RENEWAL, encoding="utf-8")
    made = datetime(2020, 1, 1, tzinfo=UTC)
    engine = make_engine(url)
    with Session(engine) as session:
        session.add(Customer(external_id="C1", name="Customer 1", tier="silver", timezone="Asia/Shanghai",
                             phone="+8613800000001", consent_sms=True, attributes={}, created_at=made,
                             updated_at=made))
        session.commit()
    engine.dispose()


def _import(url: str, tmp_path: Path, at: datetime) -> None:
    """The data team's nightly files: a new customer and C1's new policy."""
    for kind, text in (("customers", CUSTOMER), ("policies", POLICY)):
        path = tmp_path / f"{kind}.csv"
        path.write_text(text, encoding="utf-8")
        with simulated_time(lambda: at):
            report = import_csv(kind, path, url, tmp_path / f"{kind}-rejects.csv")
        assert report.rejected == [] and report.inserted == 1, report


def _service(url: str, tmp_path: Path, *, import_at: datetime | None, **planning: Any) -> list[str]:
    """Sunday noon planned ahead, then the service's ticks to Monday noon, the files imported at ``import_at``
    between two of them (before it all when None): the keys sent for Monday."""
    if import_at is None:
        _import(url, tmp_path, SUNDAY)
    with simulated_time(lambda: SUNDAY):
        plan_ahead(SUNDAY, start=SUNDAY, url=url)

    def between(last: datetime, tick: datetime) -> None:
        if import_at is not None and last < import_at <= tick:
            _import(url, tmp_path, import_at)

    return sorted(service_sends(url, SUNDAY, UNTIL, between=between, **planning))


EXPECTED = ["1:renew:s0:policy-1-2027-04-07", "1:silver-push:s0:2027-03-08T10:00",
            "2:silver-push:s0:2027-03-08T10:00"]


@pytest.mark.parametrize("planning", [{}, {"workers": 2, "chunk": 1}], ids=["one process", "two processes"])
def test_a_customer_and_a_policy_imported_on_sunday_afternoon_get_mondays_touches(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planning: dict[str, int]) -> None:
    _book(migrated_any_db, tmp_path, monkeypatch)
    assert _service(migrated_any_db, tmp_path, import_at=IMPORT, **planning) == EXPECTED


def test_the_same_sends_as_when_they_were_in_the_book_from_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from store.migrate import upgrade

    sent = {}
    for name, import_at in (("late", IMPORT), ("early", None)):
        url = f"sqlite:///{tmp_path / (name + '.db')}"
        upgrade(url)
        _book(url, tmp_path / name, monkeypatch)
        sent[name] = _service(url, tmp_path / name, import_at=import_at)
    assert sent["late"] == sent["early"]
