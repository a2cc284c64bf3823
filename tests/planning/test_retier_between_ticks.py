"""A customer retiered between the tick that planned their Monday and Monday itself gets what the
journeys say for their new tier.

``journeys run`` plans through every customer's next local day, so on Sunday it enters the silver
customers in Monday 10:00's silver weekly push. The weekly retier runs at Monday 03:00. Before, a
customer it moved from silver to potential was sent the silver push at 10:00 all the same, and never
entered the potential journey due at the same minute: the entries stood as judged on Sunday. Differential:
the service's ticks (every 30 minutes, dispatch after each) with the real retier between them send what
they send to a customer who was potential all along. A real HTTP provider on loopback, on a SQLite file and
on PostgreSQL, planned in one process and in two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session

from engine.language.journey_registry import load_tier_config
from engine.loop.retier import retier
from engine.planning.planner import plan_ahead
from store.clock import simulated_time
from store.db import make_engine
from store.models import Customer
from tests.dispatch_support import service_sends
from tests.journey_support import journeys_folder

WEEKLY = ("id: {tier}-push\nname: Weekly {tier}\ncategory: marketing\naudience: {{tiers: [{tier}]}}\n"
          'entry: {{schedule: {{cron: "0 10 * * MON"}}}}\nreentry: {{allowed: true}}\nsteps:\n'
          "  - {{id: s0, send: {{channels: [sms], template: silver_weekly_push}}}}\n")
SUNDAY = datetime(2027, 3, 7, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: Monday is planned ahead
RETIER = datetime(2027, 3, 7, 19, 0, tzinfo=UTC)  # Monday 03:00 in Shanghai, as the service schedules it
UNTIL = datetime(2027, 3, 8, 4, 0, tzinfo=UTC)  # Monday 12:00


def _book(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tier: str) -> None:
    """Both weekly journeys, and one customer in ``tier`` whose book (no policy, no activity) scores potential."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    journeys = journeys_folder(tmp_path, monkeypatch)
    for name in ("silver", "potential"):
        (journeys / f"{name}-push.yaml").write_text(WEEKLY.format(tier=name), encoding="utf-8")
    made = datetime(2020, 1, 1, tzinfo=UTC)
    engine = make_engine(url)
    with Session(engine) as session:
        session.add(Customer(external_id="C1", name="Customer 1", tier=tier, timezone="Asia/Shanghai",
                             phone="+8613800000001", consent_sms=True, attributes={}, created_at=made,
                             updated_at=made))
        session.commit()
    engine.dispose()


def _service(url: str, *, retier_at: datetime | None, **planning: Any) -> list[str]:
    """The service's ticks every 30 minutes from Sunday noon, each followed by dispatch, and the weekly
    retier at ``retier_at`` between two of them: the keys sent for Monday."""
    def between(last: datetime, tick: datetime) -> None:
        if retier_at is not None and last < retier_at <= tick:
            with simulated_time(lambda: retier_at):
                assert retier(load_tier_config(), at=retier_at, url=url).changed == 1

    return sorted(k for k in service_sends(url, SUNDAY, UNTIL, between=between, **planning) if "2027-03-08" in k)


@pytest.mark.parametrize("planning", [{}, {"workers": 2, "chunk": 1}], ids=["one process", "two processes"])
def test_a_customer_retiered_on_monday_morning_gets_the_new_tiers_push(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planning: dict[str, int]) -> None:
    url = migrated_any_db
    _book(url, tmp_path, monkeypatch, "silver")
    with simulated_time(lambda: SUNDAY):
        plan_ahead(SUNDAY, start=SUNDAY, url=url)
    sent = _service(url, retier_at=RETIER, **planning)
    assert sent == ["1:potential-push:s0:2027-03-08T10:00"]
    engine = make_engine(url)
    with engine.connect() as conn:
        left = conn.execute(text("SELECT status, error_reason FROM touch WHERE journey_id = 'silver-push'")).all()
        entered = conn.execute(text("SELECT journey_id FROM enrollment ORDER BY journey_id")).scalars().all()
    engine.dispose()
    # Planned on Sunday under the old tier, withdrawn by the retier and said why; only the new tier's entry stands.
    assert [tuple(r) for r in left] == [("cancelled", "customer's tier changed: entry judged again under the new tier")]
    assert entered == ["potential-push"]


def test_the_same_sends_as_for_a_customer_potential_all_along(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Differential: retiered at 03:00, or potential from the start (on a SQLite file of its own)."""
    from store.migrate import upgrade

    retiered_url, always_url = migrated_any_db, f"sqlite:///{tmp_path / 'always.db'}"
    upgrade(always_url)
    _book(retiered_url, tmp_path / "retiered", monkeypatch, "silver")
    with simulated_time(lambda: SUNDAY):
        plan_ahead(SUNDAY, start=SUNDAY, url=retiered_url)
    retiered = _service(retiered_url, retier_at=RETIER)

    _book(always_url, tmp_path / "always", monkeypatch, "potential")
    with simulated_time(lambda: SUNDAY):
        plan_ahead(SUNDAY, start=SUNDAY, url=always_url)
    always = _service(always_url, retier_at=None)
    assert retiered == always == ["1:potential-push:s0:2027-03-08T10:00"]
