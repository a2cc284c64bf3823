"""Delivery rules (SPEC §6): consent and fallback, quiet hours, the marketing cap and priority."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.language.settings_model import DeliveryConfig
from engine.planning.delivery_rules import (
    DROP_CAP,
    DROP_NO_CHANNEL,
    DROP_PREEMPTED,
    MOVED_QUIET,
    Decision,
    Reach,
    StoredTouch,
    Wanted,
    choose_channel,
    decide,
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


def apply(ws: list[Wanted], r: Reach, config: DeliveryConfig = CONFIG,
          stored: tuple[StoredTouch, ...] = ()) -> list[Decision]:
    decisions, changes = decide(ws, r, config, stored)
    assert changes == []
    return decisions


def stored(due: datetime, journey: str = "old", status: str = "sent", priority: int | None = 50,
           reason: str | None = None, key: str | None = None) -> StoredTouch:
    return StoredTouch(key or f"1:{journey}:s:{due.isoformat()}", journey, "s", "marketing", status, reason, due, due,
                       "sms", priority)


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
    [d] = apply([wanted(utc(2027, 3, 1, 2))], reach(wechat=False))
    assert (d.status, d.channel, d.fallback_channels) == ("planned", "sms", [])
    [d] = apply([wanted(utc(2027, 3, 1, 2), channels=("wechat", "sms", "email"), occurrence="b")], reach())
    assert (d.channel, d.fallback_channels) == ("wechat", ["sms", "email"])
    # Consented to SMS but no phone number: not reachable there.
    [d] = apply([wanted(utc(2027, 3, 1, 2), category="service")], reach(wechat=False, phone=False))
    assert (d.status, d.dropped_by) == ("dropped", DROP_NO_CHANNEL)
    assert d.reason == "no consented, reachable channel among wechat, sms"


def test_quiet_hours_move_and_urgent_service_bypass() -> None:
    late = local(SH, 2027, 3, 1, 22, 15)
    [d] = apply([wanted(late, category="service")], reach())
    assert (d.due_at, d.moved_by) == (local(SH, 2027, 3, 2, 8, 0), MOVED_QUIET)
    [d] = apply([wanted(late, category="service", urgent=True)], reach())
    assert (d.due_at, d.moved_by) == (late, None)


def test_marketing_cap_keeps_the_higher_priority_journeys() -> None:
    day = local(SH, 2027, 3, 1, 10, 0)
    decisions = apply([wanted(day, "low", priority=10), wanted(day, "high", priority=90),
                       wanted(day + timedelta(hours=1), "mid", priority=50),
                       wanted(day, "care", category="service", priority=1)], reach())
    result = {d.wanted.journey_id: (d.status, d.dropped_by, d.reason) for d in decisions}
    assert result == {"high": ("planned", None, ""), "mid": ("planned", None, ""),
                      "low": ("dropped", DROP_PREEMPTED, "pre-empted by high"), "care": ("planned", None, "")}


def test_cap_counts_touches_already_in_the_store() -> None:
    earlier = (stored(utc(2027, 3, 1, 2)), stored(utc(2027, 3, 3, 2)))
    [d] = apply([wanted(utc(2027, 3, 7, 2))], reach(), stored=earlier)
    assert (d.dropped_by, d.reason) == (DROP_CAP, "marketing cap 2 per 7d reached")
    # Seven days after the first one, a window holds only the second: room again.
    [d] = apply([wanted(utc(2027, 3, 8, 2), occurrence="later")], reach(), stored=earlier)
    assert d.status == "planned"


def test_a_later_touch_of_higher_priority_pre_empts_a_planned_one_of_its_day() -> None:
    # 09:00 priority 10 and 11:00 priority 50 are planned; a priority-90 touch for 10:00 the same day
    # arrives later (an event's): it takes the place of the lowest, which is dropped, and says why.
    day = local(SH, 2027, 3, 1, 9, 0)
    low = stored(day, "low", status="planned", priority=10)
    mid = stored(day + timedelta(hours=2), "mid", status="planned", priority=50)
    decisions, changes = decide([wanted(day + timedelta(hours=1), "high", priority=90)], reach(), CONFIG, (low, mid),
                                customer_id=1)
    assert [(d.wanted.journey_id, d.status) for d in decisions] == [("high", "planned")]
    assert [(c.key, c.old_status, c.status, c.reason) for c in changes] == [
        (low.key, "planned", "dropped", "pre_empted: pre-empted by high")]
    # A touch already being sent keeps its place: the newcomer is judged around it.
    sent = stored(day, "low", status="sending", priority=10)
    decisions, changes = decide([wanted(day + timedelta(hours=1), "high", priority=90)], reach(), CONFIG,
                                (sent, mid), customer_id=1)
    assert [(c.key, c.status, c.reason) for c in changes] == [(mid.key, "dropped", "pre_empted: pre-empted by high")]


def test_the_contest_is_the_same_whichever_run_planned_which_touch() -> None:
    # Touches over three days, planned all at once or one at a time (each later one seeing the
    # earlier ones in the store): the same ones win, for the same reasons.
    base = local(SH, 2027, 3, 1, 9, 0)
    ws = [wanted(base + timedelta(days=d, hours=h), f"j{p}", priority=p, occurrence=f"o{d}{h}")
          for d, h, p in ((0, 3, 10), (1, 0, 20), (0, 1, 90), (2, 0, 50), (1, 2, 95), (0, 0, 40))]
    together = {d.wanted.key: (d.status, d.dropped_by, d.reason) for d in apply(ws, reach())}
    store: dict[str, StoredTouch] = {}
    for w in ws:
        decisions, changes = decide([w], reach(), CONFIG, tuple(store.values()))
        for d in decisions:
            store[d.wanted.key] = StoredTouch(
                d.wanted.key, d.wanted.journey_id, d.wanted.step_id, "marketing", d.status,
                f"{d.dropped_by}: {d.reason}" if d.status == "dropped" else None, d.wanted.planned_for, d.due_at,
                d.channel, d.wanted.priority)
        for c in changes:
            old = store[c.key]
            store[c.key] = StoredTouch(old.key, old.journey_id, old.step_id, old.category, c.status, c.reason,
                                       old.planned_for, old.due_at, old.channel, old.priority)
    one_by_one = {k: (t.status, *(t.error_reason.split(": ", 1) if t.error_reason else (None, "")))
                  for k, t in store.items()}
    assert one_by_one == together


def test_rolling_window_checks_every_window_holding_the_new_touch() -> None:
    week = timedelta(days=7)
    # [3-1, 3-8) holds 3-1 and 3-5; [3-5, 3-12) holds 3-5 and 3-9: two each, fits.
    assert fits_cap([utc(2027, 3, 1), utc(2027, 3, 9)], utc(2027, 3, 5), 2, week) is True
    # Touches planned later count too: [3-5, 3-12) would hold 3-5, 3-6 and 3-9.
    assert fits_cap([utc(2027, 3, 6), utc(2027, 3, 9)], utc(2027, 3, 5), 2, week) is False
    assert fits_cap([utc(2027, 3, 1), utc(2027, 3, 3)], utc(2027, 3, 7, 23), 2, week) is False
    assert fits_cap([utc(2027, 3, 1), utc(2027, 3, 3)], utc(2027, 3, 8), 2, week) is True
    assert fits_cap([], utc(2027, 3, 5), 0, week) is False


def test_a_channel_choice_remembered_on_the_reach_is_the_one_worked_out() -> None:
    """``choose_channel`` works out each (channels, category) once per shared Reach: the same
    answer as a fresh Reach gives, for either category, and a fallback list of its own each time."""
    shared = Reach(SH, {"sms": True, "wechat": True, "email": True}, {"sms": True, "wechat": False, "email": True},
                   marketing={"sms": False})
    for channels in (["sms", "wechat", "email"], ["wechat"], ["email", "sms"]):
        for category in ("service", "marketing"):
            fresh = Reach(SH, dict(shared.consent), dict(shared.reachable), dict(shared.marketing))
            first = choose_channel(channels, shared, category)
            again = choose_channel(channels, shared, category)
            assert first == again == choose_channel(channels, fresh, category)
            assert first[1] is not again[1]
    assert choose_channel(["sms", "wechat", "email"], shared, "service") == ("sms", ["email"])
    assert choose_channel(["sms", "wechat", "email"], shared, "marketing") == ("email", [])
    assert choose_channel(["wechat"], shared, "service") == (None, [])
