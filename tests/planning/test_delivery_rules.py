"""Delivery rules (SPEC §6): consent and fallback, quiet hours, the marketing cap and priority."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.language.settings_model import DeliveryConfig
from engine.planning.delivery_rules import (
    DROP_CAP,
    DROP_NO_CHANNEL,
    MOVED_QUIET,
    CapLedger,
    Reach,
    Wanted,
    apply,
    fits_cap,
    quiet_hours_move,
)
from engine.planning.occurrences import place
from tests.plan_support import utc

SH = "Asia/Shanghai"
LA = "America/Los_Angeles"
CONFIG = DeliveryConfig()


def reach(tz: str = SH, sms: bool = True, wechat: bool = True, email: bool = True, phone: bool = True) -> Reach:
    return Reach(tz, {"sms": sms, "wechat": wechat, "email": email},
                 {"sms": phone, "wechat": True, "email": True})


def wanted(planned: datetime, journey: str = "j", category: str = "marketing", priority: int = 50,
           channels: tuple[str, ...] = ("wechat", "sms"), urgent: bool = False, occurrence: str = "o") -> Wanted:
    return Wanted(1, journey, "v1", "s", occurrence, category, urgent, priority, list(channels), "msg", planned)


def local(tz: str, *args: int) -> datetime:
    return place(datetime(*args), tz)  # type: ignore[misc]


def test_quiet_hour_edges_in_shanghai() -> None:
    assert quiet_hours_move(local(SH, 2027, 3, 1, 20, 59), SH, CONFIG) is None
    assert quiet_hours_move(local(SH, 2027, 3, 1, 21, 0), SH, CONFIG) == local(SH, 2027, 3, 2, 8, 0)
    assert quiet_hours_move(local(SH, 2027, 3, 1, 23, 30), SH, CONFIG) == utc(2027, 3, 2, 0)
    assert quiet_hours_move(local(SH, 2027, 3, 2, 7, 59), SH, CONFIG) == utc(2027, 3, 2, 0)
    assert quiet_hours_move(local(SH, 2027, 3, 2, 8, 0), SH, CONFIG) is None
    # Month end: 21:00 on 28 Feb moves to 08:00 on 1 March.
    assert quiet_hours_move(local(SH, 2027, 2, 28, 21, 0), SH, CONFIG) == utc(2027, 3, 1, 0)


def test_quiet_hours_in_los_angeles_across_dst() -> None:
    # 2027-03-13 21:00 PST moves to 08:00 PDT on the 14th (DST began at 02:00 that night).
    assert quiet_hours_move(local(LA, 2027, 3, 13, 21, 0), LA, CONFIG) == utc(2027, 3, 14, 15)
    assert quiet_hours_move(local(LA, 2027, 3, 13, 20, 59), LA, CONFIG) is None


def test_consent_and_fallback() -> None:
    ledger = CapLedger.from_config(CONFIG)
    [d] = apply([wanted(utc(2027, 3, 1, 2))], reach(wechat=False), CONFIG, ledger)
    assert (d.status, d.channel, d.fallback_channels) == ("planned", "sms", [])
    [d] = apply([wanted(utc(2027, 3, 1, 2), channels=("wechat", "sms", "email"), occurrence="b")], reach(),
                CONFIG, ledger)
    assert (d.channel, d.fallback_channels) == ("wechat", ["sms", "email"])
    # Consented to SMS but no phone number: not reachable there.
    [d] = apply([wanted(utc(2027, 3, 1, 2), category="service")], reach(wechat=False, phone=False), CONFIG, ledger)
    assert (d.status, d.dropped_by) == ("dropped", DROP_NO_CHANNEL)
    assert d.reason == "no consented, reachable channel among wechat, sms"


def test_quiet_hours_move_and_urgent_service_bypass() -> None:
    ledger = CapLedger.from_config(CONFIG)
    late = local(SH, 2027, 3, 1, 22, 15)
    [d] = apply([wanted(late, category="service")], reach(), CONFIG, ledger)
    assert (d.due_at, d.moved_by) == (local(SH, 2027, 3, 2, 8, 0), MOVED_QUIET)
    [d] = apply([wanted(late, category="service", urgent=True)], reach(), CONFIG, ledger)
    assert (d.due_at, d.moved_by) == (late, None)


def test_marketing_cap_keeps_the_higher_priority_journeys() -> None:
    ledger = CapLedger.from_config(CONFIG)
    day = local(SH, 2027, 3, 1, 10, 0)
    decisions = apply([wanted(day, "low", priority=10), wanted(day, "high", priority=90),
                       wanted(day + timedelta(hours=1), "mid", priority=50),
                       wanted(day, "care", category="service", priority=1)], reach(), CONFIG, ledger)
    result = {d.wanted.journey_id: (d.status, d.dropped_by) for d in decisions}
    assert result == {"high": ("planned", None), "mid": ("planned", None), "low": ("dropped", DROP_CAP),
                      "care": ("planned", None)}


def test_cap_counts_touches_already_in_the_store() -> None:
    ledger = CapLedger.from_config(CONFIG)
    ledger.load([(1, utc(2027, 3, 1, 2)), (1, utc(2027, 3, 3, 2))])
    [d] = apply([wanted(utc(2027, 3, 7, 2))], reach(), CONFIG, ledger)
    assert d.dropped_by == DROP_CAP
    # Seven days after the first one, a window holds only the second: room again.
    [d] = apply([wanted(utc(2027, 3, 8, 2), occurrence="later")], reach(), CONFIG, ledger)
    assert d.status == "planned"


def test_rolling_window_checks_every_window_holding_the_new_touch() -> None:
    week = timedelta(days=7)
    # [3-1, 3-8) holds 3-1 and 3-5; [3-5, 3-12) holds 3-5 and 3-9: two each, fits.
    assert fits_cap([utc(2027, 3, 1), utc(2027, 3, 9)], utc(2027, 3, 5), 2, week) is True
    # Touches planned later count too: [3-5, 3-12) would hold 3-5, 3-6 and 3-9.
    assert fits_cap([utc(2027, 3, 6), utc(2027, 3, 9)], utc(2027, 3, 5), 2, week) is False
    assert fits_cap([utc(2027, 3, 1), utc(2027, 3, 3)], utc(2027, 3, 7, 23), 2, week) is False
    assert fits_cap([utc(2027, 3, 1), utc(2027, 3, 3)], utc(2027, 3, 8), 2, week) is True
    assert fits_cap([], utc(2027, 3, 5), 0, week) is False
