"""``on_non_working_day: previous_working_day``: a reminder due before a date moves to the last working
day before a day off, never past the date it reminds of (``next_working_day`` would put "your premium
is due tomorrow" after the due date when the day before is a holiday). On a date entry and on a wait
until an anchor; one result however the planner's runs slice the time, in every zone.

Dates from the 2026 notice: 15-23 February off (Spring Festival), Saturday 14 February worked."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.language import work_calendar
from engine.language.journey_model import Step
from engine.planning.occurrences import anchor_fire
from engine.planning.plan_output import ChunkOutput
from engine.planning.planner import plan
from store.models import Policy
from tests.plan_support import Book, utc

ZONES = ["Asia/Shanghai", "Pacific/Auckland", "America/Los_Angeles"]


@settings(max_examples=200, deadline=None)
@given(anchor=st.dates(date(2024, 1, 1), date(2030, 12, 31)), back=st.integers(0, 20), zone=st.sampled_from(ZONES))
def test_the_fire_moves_to_the_last_working_day_at_or_before_its_day(anchor: date, back: int, zone: str) -> None:
    kept = anchor_fire(anchor, "10:00", f"-{back}d", zone).astimezone(ZoneInfo(zone))
    moved = anchor_fire(anchor, "10:00", f"-{back}d", zone, "previous_working_day").astimezone(ZoneInfo(zone))
    assert moved.time() == kept.time()
    assert work_calendar.is_working_day(moved.date()) and moved.date() <= kept.date()
    day = moved.date() + timedelta(days=1)
    while day <= kept.date():  # every day between is a day off
        assert not work_calendar.is_working_day(day)
        day += timedelta(days=1)


def test_a_wait_until_an_anchor_takes_the_rule_and_refuses_another() -> None:
    step = Step.model_validate({"id": "w", "wait": {"until": {"anchor": "policy.premium_due_date", "offset": "-1d",
                                                              "on_non_working_day": "previous_working_day"}}})
    assert step.wait is not None
    with pytest.raises(ValidationError, match="previous_working_day"):
        Step.model_validate({"id": "w", "wait": {"until": {"anchor": "policy.premium_due_date",
                                                           "on_non_working_day": "before"}}})


PREMIUM = """\
id: premium
name: Premium
category: service
entry:
  date: {anchor: policy.premium_due_date, offset: -15d, at: "10:00", on_non_working_day: previous_working_day}
steps:
  - id: fifteen_days
    send: {channels: [sms], template: msg}
  - id: until_eve
    wait: {until: {anchor: policy.premium_due_date, offset: -1d, at: "10:00", on_non_working_day: previous_working_day}}
  - id: the_day_before
    send: {channels: [sms], template: msg}
"""
EVE = """\
id: eve
name: Eve
category: service
entry:
  date: {anchor: policy.premium_due_date, offset: -1d, at: "09:30", on_non_working_day: previous_working_day}
steps:
  - id: remind
    send: {channels: [sms], template: msg}
"""


def _book(book: Book) -> dict[int, str]:
    book.journey("premium", PREMIUM)
    book.journey("eve", EVE)
    zones = {}
    for n, zone in enumerate(ZONES):
        cid = book.customer(timezone=zone)
        zones[cid] = zone
        # Due on Tuesday 24 February 2026, the first working day after the holiday.
        book.add(Policy(external_id=f"P{n}", customer_id=cid, product_line="life", annual_premium=6000.0,
                        start_date=date(2020, 2, 24), expiry_date=date(2040, 2, 23), status="active",
                        premium_due_date=date(2026, 2, 24)))
    return zones


def test_reminders_before_a_holiday_due_date_go_on_the_last_working_day_before_it(sqlite_book: Book) -> None:
    zones = _book(sqlite_book)
    chunks: list[ChunkOutput] = []
    plan(utc(2026, 3, 1), utc(2026, 1, 25), dry_run=True, url=sqlite_book.url, sink=chunks.append)
    dry = sorted((d.wanted.customer_id, d.wanted.journey_id, d.wanted.step_id, d.due_at)
                 for c in chunks for d in c.decisions if d.planned)
    # One run a day, as `journeys run` plans ahead.
    at = utc(2026, 1, 25)
    while at < utc(2026, 3, 1):
        plan(at + timedelta(days=1), at, url=sqlite_book.url)
        at += timedelta(days=1)
    written = sorted((t.customer_id, t.journey_id, t.step_id, t.due_at.replace(tzinfo=ZoneInfo("UTC")))
                     for t in sqlite_book.touches())
    assert written == dry
    local = {(zones[c], j, s): due.astimezone(ZoneInfo(zones[c])).replace(tzinfo=None) for c, j, s, due in written}
    for zone in ZONES:
        assert local[(zone, "premium", "fifteen_days")] == datetime(2026, 2, 9, 10)  # a Monday: kept
        # 23 February is off, and the eight days before it: the make-up Saturday 14 February.
        assert local[(zone, "premium", "the_day_before")] == datetime(2026, 2, 14, 10)
        assert local[(zone, "eve", "remind")] == datetime(2026, 2, 14, 9, 30)
