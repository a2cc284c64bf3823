"""``wait: {until: ...}``: the next local time, the next working day of the PRC calendar, a date in
scope; each on its own and through the planner."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from engine.language.journey_model import Step, WaitUntil
from engine.planning.planner import plan
from engine.planning.wait_until import wait_end
from tests.journey_support import journey, send, steps
from tests.plan_support import Book, utc

SH = "Asia/Shanghai"
LA = "America/Los_Angeles"


def until(form: dict[str, Any]) -> WaitUntil:
    wait = Step.model_validate({"id": "w", "wait": form}).wait
    assert isinstance(wait, WaitUntil)
    return wait


def test_until_a_time_is_the_next_such_local_time() -> None:
    ten = until({"until": "10:00"})
    assert wait_end(ten, utc(2027, 3, 1, 1), SH, {}) == utc(2027, 3, 1, 2)  # 09:00 local: today
    assert wait_end(ten, utc(2027, 3, 1, 2), SH, {}) == utc(2027, 3, 2, 2)  # 10:00 sharp: tomorrow
    assert wait_end(ten, utc(2027, 3, 1, 5), SH, {}) == utc(2027, 3, 2, 2)
    # Local to the customer, across the spring-forward night in Los Angeles.
    assert wait_end(ten, utc(2027, 3, 13, 20), LA, {}) == utc(2027, 3, 14, 17)


def test_until_the_next_working_day_skips_the_national_day_week() -> None:
    wait = until({"until": "next_working_day", "at": "09:30"})
    # Wednesday 30 September 2026: 1-7 October are off, 8 October is the next working day.
    assert wait_end(wait, utc(2026, 9, 30, 4), SH, {}) == utc(2026, 10, 8, 1, 30)
    # A Friday goes to Monday; the make-up Saturday 10 October 2026 is a working day.
    assert wait_end(wait, utc(2026, 10, 16, 4), SH, {}) == utc(2026, 10, 19, 1, 30)
    assert wait_end(wait, utc(2026, 10, 9, 4), SH, {}) == utc(2026, 10, 10, 1, 30)
    assert until({"until": "next_working_day"}).at is None  # 10:00 by default
    assert wait_end(until({"until": "next_working_day"}), utc(2026, 10, 9, 4), SH, {}) == utc(2026, 10, 10, 2)


def test_until_a_date_in_scope() -> None:
    wait = until({"until": {"anchor": "policy.expiry_date", "offset": "-3d", "at": "10:00"}})
    fact = {"policy.expiry_date": date(2027, 4, 1)}
    assert wait_end(wait, utc(2027, 3, 1), SH, fact) == utc(2027, 3, 29, 2)
    # Already past, or no such date: the wait ends at once.
    assert wait_end(wait, utc(2027, 3, 30), SH, fact) == utc(2027, 3, 30)
    assert wait_end(wait, utc(2027, 3, 1), SH, {}) == utc(2027, 3, 1)
    birthday = until({"until": {"anchor": "customer.birthday", "at": "09:00"}})
    assert wait_end(birthday, utc(2027, 6, 1), SH, {"customer.birthday": date(1990, 3, 5)}) == utc(2028, 3, 5, 1)
    attribute = until({"until": {"anchor": "customer.attributes.inspection", "offset": "-1d"}})
    assert wait_end(attribute, utc(2027, 6, 1), SH, {"customer.attributes.inspection": "2027-06-10"}) == \
        utc(2027, 6, 9, 2)


@pytest.mark.parametrize(("form", "words"), [
    ({"until": "25:00"}, "bad time of day '25:00'"),
    ({"until": "tomorrow"}, "bad time of day 'tomorrow'"),
    ({"until": "10:00", "at": "11:00"}, "'at' goes with 'until: next_working_day'"),
    ({"until": {"anchor": "holiday"}}, "cannot run until a holiday"),
    ({"until": {"anchor": "policy.expires"}}, "did you mean 'policy.expiry_date'"),
    ("-3d", "must be positive"),
])
def test_a_wrong_wait_says_what_is_wrong(form: Any, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        Step.model_validate({"id": "w", "wait": form})


WAITS = journey("waits", "Waits", '{date: {anchor: policy.expiry_date, offset: -30d, at: "15:00"}}', steps(
    first=send("[wechat]"), morning='wait: {until: "10:00"}', second=send("[wechat]"),
    working_day='wait: {until: next_working_day, at: "09:30"}', third=send("[wechat]"),
    before_expiry='wait: {until: {anchor: policy.expiry_date, offset: -3d, at: "11:00"}}', fourth=send("[wechat]")))


def test_the_planner_runs_each_wait_until_form(book: Book) -> None:
    book.journey("waits", WAITS)
    # Expiry 30 October 2026: entry 30 September 15:00, the eve of the National Day week.
    book.policy_holder("motor", 1000.0, start=date(2025, 10, 31), expiry=date(2026, 10, 30))
    seen: list[Any] = []
    plan(utc(2026, 10, 31), utc(2026, 9, 29), dry_run=True, url=book.url, sink=seen.append)
    planned = sorted((d.due_at, d.wanted.step_id) for chunk in seen for d in chunk.decisions if d.planned)
    assert planned == [
        (utc(2026, 9, 30, 7), "first"),
        (utc(2026, 10, 1, 2), "second"),  # the next 10:00
        (utc(2026, 10, 8, 1, 30), "third"),  # the next working day after 1 October
        (utc(2026, 10, 27, 3), "fourth"),  # three days before expiry at 11:00
    ]
    # Written run by run, a day at a time (each wait resumed from the store), the same plan results.
    now = utc(2026, 9, 29, 5)
    plan(now, utc(2026, 9, 29), url=book.url)
    while now < utc(2026, 10, 31):
        now += timedelta(days=1)
        plan(now, url=book.url)
    assert [(t.due_at, t.step_id) for t in book.touches()] == planned
