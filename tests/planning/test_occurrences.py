"""Due times in the customer's local zone: cron cadences, date anchors, 29 Feb, lunar holidays."""

from __future__ import annotations

from datetime import date

from engine.planning.occurrences import (
    anchor_fire,
    birth_md_candidates,
    birthday_fires,
    birthday_in,
    cron_fires,
    holiday_date,
    holiday_fires,
    next_cron_fire,
)
from tests.plan_support import utc

SH = "Asia/Shanghai"
LA = "America/Los_Angeles"


def test_weekly_monday_ten_in_shanghai() -> None:
    fires = cron_fires("0 10 * * MON", SH, utc(2027, 3, 1), utc(2027, 3, 15, 12))
    assert fires == (("2027-03-01T10:00", utc(2027, 3, 1, 2)), ("2027-03-08T10:00", utc(2027, 3, 8, 2)),
                     ("2027-03-15T10:00", utc(2027, 3, 15, 2)))


def test_weekly_in_los_angeles_across_dst_start() -> None:
    # DST starts Sunday 2027-03-14: 10:00 PST is 18:00 UTC, 10:00 PDT is 17:00 UTC.
    fires = cron_fires("0 10 * * MON", LA, utc(2027, 3, 7), utc(2027, 3, 16))
    assert [due for _, due in fires] == [utc(2027, 3, 8, 18), utc(2027, 3, 15, 17)]


def test_window_is_open_at_start_and_closed_at_end() -> None:
    assert cron_fires("0 10 * * MON", SH, utc(2027, 3, 1, 2), utc(2027, 3, 8, 2)) == (
        ("2027-03-08T10:00", utc(2027, 3, 8, 2)),
    )


def test_monthly_on_the_last_day_and_on_the_31st() -> None:
    last = cron_fires("0 10 L * *", SH, utc(2027, 1, 1), utc(2027, 4, 1))
    assert [label for label, _ in last] == ["2027-01-31T10:00", "2027-02-28T10:00", "2027-03-31T10:00"]
    # "on the 31st" skips the months that have no 31st.
    on_31 = cron_fires("0 10 31 * *", SH, utc(2027, 1, 1), utc(2027, 6, 1))
    assert [label for label, _ in on_31] == ["2027-01-31T10:00", "2027-03-31T10:00", "2027-05-31T10:00"]


def test_quarterly_and_yearly() -> None:
    quarterly = cron_fires("0 10 1 1,4,7,10 *", SH, utc(2027, 1, 1), utc(2028, 1, 1))
    assert [label for label, _ in quarterly] == ["2027-01-01T10:00", "2027-04-01T10:00", "2027-07-01T10:00",
                                                 "2027-10-01T10:00"]
    assert next_cron_fire("0 9 15 3 *", SH, utc(2027, 3, 15, 1)) == ("2028-03-15T09:00", utc(2028, 3, 15, 1))


def test_29_february_birthday_is_kept_on_28_february_in_a_non_leap_year() -> None:
    assert birthday_in(date(1992, 2, 29), 2027) == date(2027, 2, 28)
    assert birthday_in(date(1992, 2, 29), 2028) == date(2028, 2, 29)
    fires = birthday_fires(date(1992, 2, 29), "09:00", "0d", SH, utc(2027, 2, 27), utc(2027, 3, 2))
    assert fires == [("birthday-2027", utc(2027, 2, 28, 1))]
    # The SQL pre-selection asks for birth_md 229 on 28 Feb of a non-leap year only.
    assert 229 in birth_md_candidates(utc(2027, 2, 27, 12), utc(2027, 2, 28, 12), "0d")
    assert 229 not in birth_md_candidates(utc(2028, 2, 20), utc(2028, 2, 25), "0d")


def test_birthday_in_los_angeles_with_offset() -> None:
    # One day before, at 10:00 local; 2027-11-07 is the day DST ends in Los Angeles.
    fires = birthday_fires(date(1980, 11, 8), "10:00", "-1d", LA, utc(2027, 11, 1), utc(2027, 11, 10))
    assert fires == [("birthday-2027", utc(2027, 11, 7, 18))]


def test_policy_expiry_minus_30_days_over_a_month_end() -> None:
    assert anchor_fire(date(2027, 3, 30), "10:00", "-30d", SH) == utc(2027, 2, 28, 2)
    assert anchor_fire(date(2027, 3, 31), "10:00", "-30d", LA) == utc(2027, 3, 1, 18)


def test_spring_festival_and_other_lunar_holidays() -> None:
    assert holiday_date("spring_festival", 2027) == date(2027, 2, 6)
    assert holiday_date("spring_festival", 2026) == date(2026, 2, 17)
    assert holiday_date("dragon_boat", 2027) == date(2027, 6, 9)
    assert holiday_date("mid_autumn", 2026) == date(2026, 9, 25)
    fires = holiday_fires(["spring_festival", "mid_autumn"], "09:00", "-1d", SH, utc(2027, 1, 1), utc(2027, 12, 31))
    assert fires == [("spring_festival-2027", utc(2027, 2, 5, 1)), ("mid_autumn-2027", utc(2027, 9, 14, 1))]
